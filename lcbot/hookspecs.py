"""The hooks a plugin can implement. Mark implementations with ``@lcbot.hookimpl``.

A plugin implements any subset of these; argument names must match, but a hook may
accept fewer arguments than are offered. Every hook runs inside lcbot's error guard: a
hook that raises is logged with the plugin's name and the plugin is disabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from lcbot.app import App
    from lcbot.commands import Command, Registry
    from lcbot.users import User

hookspec = pluggy.HookspecMarker("lcbot")
hookimpl = pluggy.HookimplMarker("lcbot")


@hookspec
def register_commands(registry: Registry) -> None:
    """Add this plugin's chat commands to ``registry``.

    Called once per plugin at start-up (and by ``lcbot commands list``), in load order:
    built-in plugins, then installed packages, then folder plugins. Use the decorator
    ``@registry.command(name, kind=CmdType.GET, pri=Pri.USER, help=...)`` or
    ``registry.add(Command(...))``. If two plugins register the same name, the first keeps
    it and a warning names both. The return value is ignored.
    """


@hookspec
def authorize(user: User, command: Command, extra: str | None) -> bool | None:
    """Decide whether ``user`` may run ``command`` with ``extra`` (text after the name).

    Called for every known user's command before it runs, and to pick who is told about a
    successful SET command. Return ``False`` to deny, ``True`` to allow, ``None`` to leave
    the decision to others. Any ``False`` denies; otherwise any ``True`` allows; otherwise
    the privilege rule decides (``user.pri <= command.pri``).
    """


@hookspec
def on_alert(alert: Any) -> bool | None:
    """Inspect or change an alert before it is routed.

    Called once per alert raised by ``app.alert``, ``ctx.alert`` or ``lcbot alert``. The
    hook may edit ``alert.text``, ``alert.level`` or ``alert.recipients``. Return
    ``False`` to suppress the alert (any ``False`` wins; it is still recorded); ``None``
    or ``True`` lets it through.
    """


@hookspec
def lcbot_startup(app: App) -> None:
    """Called once when ``lcbot run`` has loaded plugins and before messages flow.

    Use it to read configuration (``app.config.section("myplugin")``) or start work. The
    return value is ignored; a hook that raises disables its plugin, the bot carries on.
    """


@hookspec
def lcbot_shutdown(app: App) -> None:
    """Called once when the bot stops (quit, Ctrl-C, SIGTERM, end of console input).

    Release what ``lcbot_startup`` acquired. Pending messages are drained after this
    hook, so replies queued here are still sent. The return value is ignored.
    """
