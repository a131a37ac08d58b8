"""The hooks a plugin can implement. Mark implementations with ``@lcbot.hookimpl``.

A plugin implements any subset; argument names must match, but a hook may accept fewer
arguments than are offered. Hooks are called through pluggy, so ``tryfirst``, ``trylast``
and ``wrapper=True`` mean what pluggy documents; otherwise the plugin loaded last runs
first. Each hook says what happens when an implementation (a wrapper too) raises.
``register_commands``, ``authorize``, ``on_alert`` and ``config_schema`` must be plain
``def``; the start-up and shutdown hooks may be ``async def``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from lcbot.bot import Bot
    from lcbot.commands import Command, PluginRegistry
    from lcbot.setting import Setting
    from lcbot.users import User

hookspec = pluggy.HookspecMarker("lcbot")
hookimpl = pluggy.HookimplMarker("lcbot")


@hookspec
def register_commands(registry: PluginRegistry) -> None:
    """Add this plugin's chat commands to ``registry``.

    Called once at start-up (and by ``lcbot commands list``). Use the decorator
    ``@registry.command(name, kind=CmdType.GET, pri=Pri.USER, help=...)`` or
    ``registry.add(Command(...))``. If two plugins register one name, the plugin loaded
    first keeps it and a warning names both. The return value is ignored.
    **If it raises**, the plugin is disabled: its commands are removed, it is unregistered
    and shown as ``failed``; the bot carries on.
    """


@hookspec
def authorize(user: User, command: Command, extra: str | None) -> bool | None:
    """Decide whether ``user`` may run ``command`` with ``extra`` (text after the name).

    Called before a known user's command runs (with its ``extra``); and, with ``extra``
    None, to list the commands a user may run (``help``) and to pick who is told about a
    successful SET — that answer is kept for a second per user and command.
    Return ``False`` to deny, ``True`` to allow, ``None`` to leave the decision to others.
    Any ``False`` denies;
    otherwise any ``True`` allows; otherwise the privilege rule decides
    (``user.pri <= command.pri``).
    **If it raises**, that invocation is denied (fail closed) and the error is logged; the
    plugin stays loaded. If the plugin is disabled (another of its hooks raised), every
    command is denied to all but root users: its policy can no longer be checked.
    """


@hookspec
def on_alert(alert: Any) -> bool | None:
    """Inspect or change an alert before it is routed.

    Called once per alert (``bot.alert``, ``ctx.alert``, ``lcbot alert``, HTTP). May edit
    ``alert.text``, ``alert.level`` or ``alert.recipients`` (user names and ``room:<id>``
    group chats, listed in lcbot.toml or not). Return ``False`` to suppress
    the alert (any ``False`` wins; it is still recorded); ``None`` or ``True`` lets it
    through.
    **If it raises**, the alert is left as it was before this implementation ran, the
    error is logged, and routing goes on; the plugin stays loaded.
    """


@hookspec
def config_schema() -> list[Setting]:
    """Describe this plugin's own lcbot.toml section (named after the plugin).

    Called once when the bot (or ``lcbot config check``) loads plugins. Return a list of
    ``lcbot.Setting``; the section is then checked like lcbot's own (a bad value stops
    ``lcbot run`` with exit 2, naming the key) and ``bot.config`` holds the checked values
    with defaults filled in. Without this hook ``bot.config`` is the raw table.
    **If it raises**, the plugin is disabled.
    """


@hookspec
def lcbot_startup(bot: Bot) -> None:
    """Called once when the bot has started, before messages are handled.

    ``bot`` is this plugin's view of the running bot (``bot.config``, ``bot.state``,
    ``bot.every``…). May be ``async def``. The return value is ignored.
    **If it raises**, the plugin is disabled (its commands are removed); the bot carries on.
    """


@hookspec
def lcbot_shutdown(bot: Bot) -> None:
    """Called once when the bot stops (quit, Ctrl-C, SIGTERM, end of console input).

    Release what ``lcbot_startup`` acquired. Pending messages are drained after this hook,
    so messages sent here still go out. May be ``async def``; the return value is ignored.
    **If it raises**, the error is logged and the other plugins' hooks still run.
    """
