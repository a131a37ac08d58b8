"""``lcbot alert``, ``lcbot alerts recent|firing|purge`` and ``lcbot outbox list|retry|purge``.

They work on the database in ``data_dir`` whether or not ``lcbot run`` is running: a
running bot picks new alerts and retried rows up within a second.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from lcbot.cli.common import (
    ConfigOption,
    JsonOption,
    escape,
    print_json,
    stdout,
    sub_app,
    when,
)
from lcbot.cli.common import database as _db
from lcbot.errors import UsageError

LIMIT = typer.Option("--limit", "-n", help="How many.", min=1, max=1_000_000)

alerts_app = sub_app("Inspect alerts and their routing.")
outbox_app = sub_app("Inspect and repair the queue of outgoing messages.")


def _room_label(room: dict) -> str:
    """``room ops (4242@chatroom)`` for a room of an alert's outcome."""
    topic, room_id = room.get("topic"), room.get("id")
    return f"room {topic} ({room_id})" if topic else f"room {room_id}"


def _age(text: str) -> float:
    from lcbot.durations import parse_duration

    if text == "0s":
        return 0.0
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None


def _labels(items: list[str]) -> dict[str, str]:
    """``--label NAME=VALUE`` options as a mapping (checked by ``make_alert``)."""
    from lcbot.alerts import InvalidAlert, check_labels

    labels: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--label: expected NAME=VALUE, got {item!r}")
        if name in labels:
            raise UsageError(f"--label: {name} given twice")
        labels[name] = value
    try:
        return check_labels(labels)
    except InvalidAlert as exc:
        raise UsageError(f"--label: {exc}") from None


def alert(
    text: Annotated[str, typer.Argument(help="Alert text; - reads it from standard input.")],
    level: Annotated[
        str, typer.Option("--level", "-l", help="info, warning or critical.", metavar="LEVEL")
    ] = "info",
    title: Annotated[str | None, typer.Option("--title", help="Short title.")] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="De-duplication key (e.g. disk:/var).")
    ] = None,
    resolved: Annotated[
        bool, typer.Option("--resolved", help="The problem is over: always delivered.")
    ] = False,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="A label NAME=VALUE (repeatable).", metavar="NAME=VALUE"),
    ] = None,
    config_path: ConfigOption = None,
) -> None:
    """Raise an alert; prints its id. Works whether or not `lcbot run` is running."""
    from lcbot.alerts import check_level, make_alert
    from lcbot.db import transaction
    from lcbot.db.alerts import insert_new

    check_level(level)
    labels = _labels(label or [])
    if text == "-":
        text = sys.stdin.read()
    checked = make_alert(text, level, title, key, resolved, source="cli", labels=labels)
    with _db(config_path) as db, transaction(db):
        (alert_id,) = insert_new(db, [checked])
    typer.echo(alert_id)


@alerts_app.command("recent")
def recent(
    limit: Annotated[int, LIMIT] = 20,
    json_output: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Recent alerts with their outcome: delivered to whom, deduplicated, silenced, …"""
    from lcbot.db.alerts import recent as recent_alerts
    from lcbot.labels import format_labels

    with _db(config_path, create=False) as db:
        items = [] if db is None else recent_alerts(db, limit)
    if json_output:
        print_json(items)
        return
    from rich.table import Table

    table = Table("id", "time", "level", "alert", "key", "outcome")
    for a in items:
        outcome = a["state"]
        details = a["outcome"] or {}
        to = [*details.get("to", ()), *map(_room_label, details.get("rooms", ()))]
        if to:
            outcome += " to " + ", ".join(to)
        if details.get("muted"):
            outcome += " (muted: " + ", ".join(details["muted"]) + ")"
        if details.get("silence"):
            outcome += f" by silence {details['silence']}"
        if details.get("inhibited_by"):
            outcome += f" by {details['inhibited_by']}"
        text = (f"{a['title']}: " if a["title"] else "") + a["text"]
        if a["resolved"]:
            text = "resolved: " + text
        if a["labels"]:
            text += f" [{format_labels(a['labels'])}]"
        table.add_row(
            str(a["id"]),
            when(a["created"]),
            a["level"],
            escape(text),
            escape(a["key"] or ""),
            escape(outcome),
        )
    stdout().print(table)


@alerts_app.command("firing")
def firing(json_output: JsonOption = False, config_path: ConfigOption = None) -> None:
    """The alerts firing now (newest first): short id, age, labels, who received them, ack."""
    from lcbot.db.firing import load

    with _db(config_path, create=False) as db:
        items = [] if db is None else load(db)
    items.sort(key=lambda f: (f["first_seen"], f["id"]), reverse=True)
    if json_output:
        print_json(items)
        return
    from rich.table import Table

    from lcbot.durations import format_duration
    from lcbot.labels import format_labels

    now = time.time()
    table = Table("id", "level", "alert", "age", "labels", "to", "ack")
    for f in items:
        ack = f"{f['acked_by']} at {when(f['acked_at'])}" if f["acked_by"] else ""
        if f["step"]:
            ack = ack or f"escalated ×{f['step']}"
        table.add_row(
            f"#{f['id']}",
            f["level"],
            escape((f"{f['title']}: " if f["title"] else "") + f["text"]),
            format_duration(max(1.0, now - f["first_seen"])),
            escape(format_labels(f["labels"])),
            escape(", ".join(f["recipients"])),
            escape(ack),
        )
    stdout().print(table)


@alerts_app.command("purge")
def purge_alerts(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Delete routed alerts older than this (e.g. 30d).")
    ] = "30d",
    config_path: ConfigOption = None,
) -> None:
    """Delete routed alerts older than --older-than (alerts not yet routed are kept)."""
    from lcbot.db import transaction
    from lcbot.db.alerts import purge

    age = _age(older_than)
    count = 0
    with _db(config_path, create=False) as db:
        if db is not None:
            with transaction(db):
                count = purge(db, time.time() - age)
    stdout().print(f"purged {count} alert(s)")


@outbox_app.command("list")
def list_outbox(
    state: Annotated[
        str | None,
        typer.Option("--state", help="pending, sent, dead or retry.", metavar="STATE"),
    ] = None,
    limit: Annotated[int, LIMIT] = 50,
    json_output: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """List queued, sent and dead messages (newest first); a pending one whose recipient
    is held (a reply window) shows why."""
    from lcbot.db.outbox import STATES, list_rows

    if state is not None and state not in STATES:
        raise UsageError(f"unknown state {state!r}; valid states: {', '.join(STATES)}")
    with _db(config_path, create=False) as db:
        items = [] if db is None else list_rows(db, state, limit)
    if json_output:
        print_json(items)
        return
    from rich.table import Table

    table = Table("id", "queued", "to", "kind", "state", "tries", "text")
    for m in items:
        state_text = m["state"] + (f" ({m['last_error']})" if m["last_error"] else "")
        if m["held"] is not None:  # its recipient is held by a gated transport (lcbot.holds)
            state_text = f"{m['state']} (held: {m['held']})"
        first_line = m["text"].split("\n")[0][:60]
        if m["file"] is not None:  # a file message: its text is the file's name
            first_line = f"[file] {m['text']} ({m['file_size']:,} bytes)"
        table.add_row(
            str(m["id"]),
            when(m["created"]),
            escape(m["recipient"]),
            m["kind"],
            escape(state_text),
            str(m["attempts"]),
            escape(first_line),
        )
    stdout().print(table)


@outbox_app.command("retry")
def retry(
    message_id: Annotated[
        int | None, typer.Argument(help="Message id.", metavar="ID", min=1, max=2**63 - 1)
    ] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Retry every dead message.")] = False,
    config_path: ConfigOption = None,
) -> None:
    """Send dead messages again (a running bot picks them up within a second)."""
    from lcbot.db import transaction
    from lcbot.db.outbox import retry as mark_retry
    from lcbot.db.outbox import state_of

    if (message_id is None) == (not dead):
        raise UsageError("give a message ID or --dead")
    with _db(config_path, create=False) as db:
        if db is None:
            raise UsageError("no outbox yet: nothing to retry")
        with transaction(db):
            if not dead:
                state = state_of(db, message_id)
                if state is None:
                    raise UsageError(f"no message {message_id}")
                if state != "dead":
                    raise UsageError(f"message {message_id} is {state}, not dead")
            count = mark_retry(db, None if dead else message_id)
    stdout().print(f"{count} message(s) queued again")


@outbox_app.command("purge")
def purge(
    sent: Annotated[bool, typer.Option("--sent", help="Delete sent messages.")] = False,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Only those sent longer ago (e.g. 7d).")
    ] = "0s",
    config_path: ConfigOption = None,
) -> None:
    """Delete sent messages (pending and dead ones are never purged)."""
    from lcbot.db import transaction
    from lcbot.db.outbox import purge_sent

    if not sent:
        raise UsageError("purge what? only --sent can be purged")
    age = _age(older_than)
    count = 0
    with _db(config_path, create=False) as db:
        if db is not None:
            with transaction(db):
                count = purge_sent(db, time.time() - age)
    stdout().print(f"purged {count} sent message(s)")
