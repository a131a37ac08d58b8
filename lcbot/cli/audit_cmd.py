"""``lcbot audit``: the audit log of chat commands (who ran what, allowed or denied and by
what, how it ended). Reads the database whether or not ``lcbot run`` is running."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from lcbot.cli.common import ConfigOption, JsonOption, database, escape, print_json, stdout, when
from lcbot.errors import UsageError


def audit(
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Only this user's commands.", metavar="U")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only this recent (e.g. 1h, 1d).", metavar="DURATION"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many.", min=1)] = 50,
    json_output: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """The latest command invocations, newest first: who, command, extra, allowed or denied
    (by what), outcome, duration, transport."""
    from lcbot.db.audit import recent
    from lcbot.durations import parse_duration

    start = None
    if since is not None:
        try:
            start = time.time() - parse_duration(since)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from None
    with database(config_path, create=False) as db:
        rows = [] if db is None else recent(db, limit, user, start)
    if json_output:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("time", "user", "command", "decision", "outcome", "took", "transport")
    for r in rows:
        what = r["command"] + (f" {r['extra']}" if r["extra"] else "")
        decision = r["decision"] + (f" ({r['by']})" if r["by"] else "")
        table.add_row(
            when(r["at"]),
            escape(r["user"]),
            escape(what),
            escape(decision),
            r["outcome"] or "",
            f"{r['duration']:.2f}s",
            r["transport"],
        )
    stdout().print(table)
