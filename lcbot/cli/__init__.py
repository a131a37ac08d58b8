"""The ``lcbot`` command line (typer). Sub-command modules import heavy things lazily.

``main()`` builds only the command group named on the command line (``lcbot user …``
imports and builds just the ``user`` commands), which keeps start-up short; ``app`` (for
tests and ``--help``) has every command.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer

from lcbot import __version__
from lcbot.cli.common import LcbotGroup

# command name → (module in lcbot.cli, attribute, kind): "command" or "group"
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("run_cmd", "run", "command"),
    "init": ("config_cmds", "init", "command"),
    "user": ("users", "app", "group"),
    "room": ("rooms", "app", "group"),
    "config": ("config_cmds", "app", "group"),
    "plugins": ("plugins_cmds", "plugins_app", "group"),
    "commands": ("plugins_cmds", "commands_app", "group"),
    "plugin": ("plugins_cmds", "plugin_app", "group"),
    "alert": ("alert_cmds", "alert", "command"),
    "alerts": ("alert_cmds", "alerts_app", "group"),
    "outbox": ("alert_cmds", "outbox_app", "group"),
    "silence": ("silence_cmds", "app", "group"),
    "heartbeat": ("heartbeat_cmds", "heartbeat", "command"),
    "heartbeats": ("heartbeat_cmds", "heartbeats", "command"),
    "wechat": ("wechat_cmds", "app", "group"),
    "ilink": ("ilink_cmds", "app", "group"),
    "watch": ("watch_cmd", "watch", "command"),
    "audit": ("audit_cmd", "audit", "command"),
}


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lcbot {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show version."),
    ] = False,
) -> None:
    """lcbot: watch and steer long-running jobs from WeChat."""


def build_app(only: str | None = None) -> typer.Typer:
    """The CLI with every command, or with just the command ``only``."""
    cli = typer.Typer(
        cls=LcbotGroup,
        help="lcbot: watch and steer long-running jobs from WeChat.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        # Plain help: typer's rich help imports ~50 ms of modules on every `--help`.
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    cli.callback()(_root)
    for name, (module, attribute, kind) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(f"lcbot.cli.{module}"), attribute)
        if kind == "group":
            cli.add_typer(target, name=name)
        else:
            cli.command(name, **getattr(target, "command_options", {}))(target)
    return cli


def __getattr__(name: str) -> Any:
    if name == "app":
        value = globals()["app"] = build_app()
        return value
    raise AttributeError(name)


def main() -> None:
    """Console-script entry point."""
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    first = words[0] if words else None
    build_app(first if first in COMMANDS and sys.argv[1] == first else None)()
