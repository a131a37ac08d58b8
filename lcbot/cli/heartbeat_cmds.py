"""``lcbot heartbeat KEY --every 1h`` (a beat, e.g. from cron) and ``lcbot heartbeats``.

A beat goes straight into the database, so it counts whether or not ``lcbot run`` is
running; a running bot sees it within a second (it polls the table).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from lcbot.cli.common import ConfigOption, JsonOption, database, escape, print_json, stdout, when
from lcbot.errors import UsageError


def heartbeat(
    key: Annotated[str, typer.Argument(help="The heartbeat's name (e.g. nightly-backup).")],
    every: Annotated[
        str | None,
        typer.Option("--every", help="Expected period (e.g. 1h, 30m, 1d).", metavar="DURATION"),
    ] = None,
    grace: Annotated[
        str,
        typer.Option("--grace", help="Extra time before it counts as late.", metavar="DURATION"),
    ] = "0s",
    level: Annotated[
        str,
        typer.Option("--level", "-l", help="Alert level: info, warning or critical.", metavar="L"),
    ] = "warning",
    remove: Annotated[bool, typer.Option("--remove", help="Forget this heartbeat.")] = False,
    config_path: ConfigOption = None,
) -> None:
    """Record a beat of KEY: without another one within --every (+ --grace), the bot
    alerts `KEY: no heartbeat for …`; the next beat resolves it."""
    from lcbot.beats import InvalidBeat, check_beat, check_key, parse_period
    from lcbot.db import heartbeats as sql
    from lcbot.db import transaction

    try:
        if remove:
            if every is not None:
                raise UsageError("--remove takes no --every")
            check_key(key)
        else:
            if every is None:
                raise UsageError("--every is required (e.g. --every 1h)")
            seconds = parse_period(every, "--every")
            extra = parse_period(grace, "--grace", zero=True)
            key, seconds, extra, level = check_beat(key, seconds, extra, level)
    except InvalidBeat as exc:
        name = "KEY" if exc.field == "key" else "--" + exc.field.lstrip("-")
        raise UsageError(f"{name}: {exc.reason}") from None
    with database(config_path) as db, transaction(db):
        if remove:
            if not sql.remove(db, key):
                raise UsageError(f"no heartbeat {key!r}")
        else:
            sql.beat(db, key, seconds, extra, level, "cli", time.time())


def heartbeats(json_output: JsonOption = False, config_path: ConfigOption = None) -> None:
    """List heartbeats: period, grace, last beat, late or ok."""
    from lcbot.beats import from_row
    from lcbot.db import heartbeats as sql
    from lcbot.durations import format_duration

    with database(config_path, create=False) as db:
        rows = [] if db is None else sql.listing(db)
    now = time.time()
    items = [from_row(row)[0] for row in rows]
    if json_output:
        print_json([beat.as_dict(now) for beat in items])
        return
    if not items:
        stdout().print("no heartbeats yet (lcbot heartbeat KEY --every 1h creates one)")
        return
    from rich.table import Table

    table = Table("key", "every", "grace", "level", "last beat", "state")
    for beat in items:
        ago = format_duration(max(0.0, now - beat.last_beat))
        table.add_row(
            escape(beat.key),
            format_duration(beat.every),
            format_duration(beat.grace) if beat.grace else "",
            beat.level,
            f"{when(beat.last_beat)} ({ago} ago)",
            "late" if beat.is_late(now) else "ok",
        )
    stdout().print(table)
