"""Pieces shared by the CLI command modules: the --config option, output, errors.

Keep this module light: it is imported by every ``lcbot`` invocation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from lcbot.errors import LcbotError

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="LCBOT_CONFIG",
        show_envvar=True,
        help="Path of lcbot.toml (default: ./lcbot.toml).",
        show_default=False,
    ),
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def stdout():
    """A rich console on stdout (imported on first use: rich costs start-up time). Lines
    are not wrapped: a long path must stay whole for whoever reads or greps it."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    """Escape rich markup in user-provided text."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def error(message: str) -> None:
    """Print ``error: message`` on stderr."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(message)}"
    )


def notice(message: str) -> None:
    """Print ``note: message`` on stderr (one line; not an error)."""
    sys.stderr.write(f"note: {message}\n")


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def sub_app(help: str) -> typer.Typer:
    """A typer sub-command group; plain (non-rich) help keeps `--help` fast."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)


class LcbotGroup(TyperGroup):
    """The root command group: turns LcbotError into a one-line message and its exit code."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except LcbotError as exc:
            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
