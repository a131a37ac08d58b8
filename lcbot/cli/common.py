"""Pieces shared by the CLI command modules: the --config option, output, errors.

Keep this module light: it is imported by every ``lcbot`` invocation.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from lcbot.errors import LcbotError

if TYPE_CHECKING:
    import sqlite3

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


@contextlib.contextmanager
def database(config_path: Path | None, create: bool = True) -> Iterator[sqlite3.Connection | None]:
    """The database of the config's data dir, open for the block (None when ``create`` is
    False and there is none yet); damage met in the block is reported as such
    (``lcbot.db.Damaged``)."""
    from lcbot import config
    from lcbot.db import DB_NAME, connect, reporting

    cfg = config.load(config_path)
    path = cfg.bot.data_dir / DB_NAME
    if not create and not path.exists():
        yield None
        return
    db = connect(path)
    try:
        with reporting(path):
            yield db
    finally:
        db.close()


def when(ts: float | None) -> str:
    """``2024-05-01 12:00:00`` (local time) for an epoch time; ``""`` for none."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""
