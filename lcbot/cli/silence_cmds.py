"""``lcbot silence add|list|expire``: silences by label matchers, on the database in
``data_dir`` whether or not ``lcbot run`` is running (a running bot picks changes up
within seconds: ``lcbot.silencing.RELOAD``)."""

from __future__ import annotations

import getpass
import time
from typing import Annotated

import typer

from lcbot.cli.common import ConfigOption, JsonOption, escape, print_json, stdout, sub_app, when
from lcbot.cli.common import database as _db
from lcbot.errors import UsageError

app = sub_app("Silence alerts by label matchers (as in Alertmanager).")


@app.command("add")
def add(
    matchers: Annotated[
        list[str],
        typer.Argument(
            help="Matchers such as host=db1 'alertname=~\"Disk.*\"'.", metavar="MATCHER…"
        ),
    ],
    duration: Annotated[
        str, typer.Option("--duration", "-d", help="How long (e.g. 2h).", metavar="DURATION")
    ],
    comment: Annotated[str, typer.Option("--comment", "-c", help="Why (required).")],
    author: Annotated[
        str | None, typer.Option("--author", help="Who (default: your login name).")
    ] = None,
    config_path: ConfigOption = None,
) -> None:
    """Silence alerts whose labels match every MATCHER; prints the silence's id."""
    from lcbot.db import transaction
    from lcbot.durations import parse_duration
    from lcbot.matchers import InvalidMatcher, parse_matcher
    from lcbot.silencing import MAX_COMMENT, load, make_silence, save

    try:
        parsed = [parse_matcher(text) for text in matchers]
    except InvalidMatcher as exc:
        raise UsageError(str(exc)) from None
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise UsageError(f"--duration: {exc}") from None
    comment = comment.strip()
    if not comment or len(comment) > MAX_COMMENT:
        raise UsageError(f"--comment: give a reason of at most {MAX_COMMENT} characters")
    who = (author or getpass.getuser()).strip()
    if not who or len(who) > 100:
        raise UsageError("--author: give a name of at most 100 characters")
    now = time.time()
    with _db(config_path) as db, transaction(db):
        assert db is not None
        taken = {s.id for s in load(db, now, ended_since=0.0)}
        silence = make_silence(parsed, seconds, who, comment, now, taken.__contains__)
        save(db, silence)
    typer.echo(silence.id)


@app.command("list")
def list_silences(
    expired: Annotated[
        bool, typer.Option("--expired", help="Also those ended in the last 7 days.")
    ] = False,
    json_output: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """The silences by matchers in force (newest first)."""
    from lcbot.silencing import KEEP_ENDED, load

    now = time.time()
    with _db(config_path, create=False) as db:
        found = [] if db is None else load(db, now, now - KEEP_ENDED if expired else None)
    if json_output:
        print_json([{**s.as_dict(), "active": s.active(now)} for s in found])
        return
    from rich.table import Table

    table = Table("id", "matchers", "until", "author", "comment")
    for s in found:
        until = when(s.until) + ("" if s.active(now) else " (ended)")
        table.add_row(
            s.id, escape(s.describe()), until, escape(s.author or ""), escape(s.comment or "")
        )
    stdout().print(table)


@app.command("expire")
def expire(
    silence_id: Annotated[str, typer.Argument(help="The silence's id.", metavar="ID")],
    config_path: ConfigOption = None,
) -> None:
    """End a silence now."""
    from lcbot.db import transaction
    from lcbot.silencing import end

    with _db(config_path, create=False) as db:
        if db is None:
            raise UsageError(f"no silence {silence_id}")
        with transaction(db):
            if not end(db, silence_id.strip(), time.time()):
                raise UsageError(f"no silence {silence_id} in force")
    stdout().print(f"silence {silence_id} expired")
