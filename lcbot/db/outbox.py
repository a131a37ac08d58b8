"""SQL for the ``outbox`` table: every outgoing message, its state and delivery record.

States: ``pending`` (to send), ``sent``, ``dead`` (gave up after ``max_attempts``) and
``retry`` (``lcbot outbox retry`` asked for another go; the bot makes it pending).
Rows are returned as tuples in ``COLUMNS`` order. A file message has ``file`` (its key in
``<data_dir>/files/``) and ``file_size``; its ``text`` is the file's name.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from lcbot.db.rows import insert_rows

STATES = ("pending", "sent", "dead", "retry")
COLUMNS = "id, recipient, text, kind, attempts, created, priority, parts_sent, file, file_size"
LIST_COLUMNS = (
    *("id", "created", "recipient", "kind", "state", "attempts", "sent_at", "last_error"),
    *("file", "file_size"),
)
OPEN_STATES = ("pending", "retry", "dead")  # rows whose file is kept (dead: retryable)


# --- the running bot ---------------------------------------------------------------------


def next_id(db: sqlite3.Connection) -> int:
    (last,) = db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()
    return last + 1


def pending_recipients(db: sqlite3.Connection) -> list[str]:
    """Who has pending rows (at start: the drainer reads each one's backlog in windows); one
    index seek per recipient (a skip scan), not a walk over every pending row."""
    rows = db.execute(
        "WITH RECURSIVE who(name) AS ("
        "SELECT min(recipient) FROM outbox WHERE state = 'pending' UNION ALL "
        "SELECT (SELECT min(recipient) FROM outbox WHERE state = 'pending' "
        "AND recipient > who.name) FROM who WHERE who.name IS NOT NULL) "
        "SELECT name FROM who WHERE name IS NOT NULL"
    )
    return [recipient for (recipient,) in rows]


def pending_counts(db: sqlite3.Connection) -> dict[str, int]:
    """Pending rows per recipient (``lcbot ilink status``)."""
    rows = db.execute(
        "SELECT recipient, count(*) FROM outbox WHERE state = 'pending' GROUP BY recipient"
    )
    return dict(rows.fetchall())


def pending_for(
    db: sqlite3.Connection, recipient: str, after: tuple[int, int] | None, limit: int
) -> list[tuple]:
    """The next ``limit`` pending rows of ``recipient`` by (priority, id) after ``after``:
    the rest of ``after``'s priority, then the higher ones (two index ranges: a row-value
    comparison would scan the index from the recipient's first row)."""
    priority, last = after if after is not None else (-1, 0)
    select = f"SELECT {COLUMNS} FROM outbox WHERE state = 'pending' AND recipient = ? "
    rows = []
    if after is not None:
        rows = db.execute(
            select + "AND priority = ? AND id > ? ORDER BY id LIMIT ?",
            (recipient, priority, last, limit),
        ).fetchall()
    if len(rows) < limit:
        rows += db.execute(
            select + "AND priority > ? ORDER BY priority, id LIMIT ?",
            (recipient, priority, limit - len(rows)),
        ).fetchall()
    return rows


def pending_after(db: sqlite3.Connection, recipient: str, after: tuple[int, int] | None) -> int:
    """How many pending rows of ``recipient`` sort after ``after`` (two index range counts:
    the drainer asks once, when a hold is about to start)."""
    priority, last = after if after is not None else (-1, 0)
    (count,) = db.execute(
        "SELECT (SELECT count(*) FROM outbox WHERE state = 'pending' AND recipient = ?1 "
        "AND priority = ?2 AND id > ?3) + (SELECT count(*) FROM outbox "
        "WHERE state = 'pending' AND recipient = ?1 AND priority > ?2)",
        (recipient, priority, last),
    ).fetchone()
    return count


def counts(db: sqlite3.Connection) -> dict[str, int]:
    """Rows per state (at start only; the bot keeps them in memory after): the open states
    from their partial indexes, ``sent`` the rest of the table's count."""
    found = {
        state: db.execute(f"SELECT count(*) FROM outbox WHERE state = '{state}'").fetchone()[0]
        for state in OPEN_STATES
    }
    (total,) = db.execute("SELECT count(*) FROM outbox").fetchone()
    found["sent"] = total - sum(found.values())
    return {state: found[state] for state in STATES}


def last_sent_at(db: sqlite3.Connection) -> float | None:
    row = db.execute(
        "SELECT sent_at FROM outbox WHERE state = 'sent' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def insert(db: sqlite3.Connection, messages: Iterable[Any]) -> None:
    insert_rows(
        db,
        "INSERT INTO outbox (id, recipient, text, kind, created, priority, file, file_size)",
        [
            (m.id, m.recipient, m.text, m.kind, m.created, m.priority, m.file, m.file_size)
            for m in messages
        ],
    )


def open_files(db: sqlite3.Connection) -> set[str]:
    """The files that rows still need (pending, retry, dead): at start, the rest goes."""
    selects = " UNION ALL ".join(
        f"SELECT file FROM outbox WHERE state = '{state}' AND file IS NOT NULL"
        for state in OPEN_STATES
    )
    return {key for (key,) in db.execute(selects)}


def mark_failed(db: sqlite3.Connection, rows: Iterable[tuple[int, str, str, int]]) -> None:
    """``rows``: ``(attempts, state, last_error, id)``; state ``pending`` or ``dead``."""
    db.executemany("UPDATE outbox SET attempts = ?, state = ?, last_error = ? WHERE id = ?", rows)


def mark_parts(db: sqlite3.Connection, rows: Iterable[tuple[int, int]]) -> None:
    """``rows``: ``(parts_sent, id)``: how many parts of a long message went out."""
    db.executemany("UPDATE outbox SET parts_sent = ? WHERE id = ?", rows)


RUN = 4  # ids in a row that are marked with one range (cheaper than a lookup each)


def id_runs(ids: Iterable[int]) -> tuple[list[tuple[int, int]], list[int]]:
    """``ids`` as ranges ``(first, last)`` of at least ``RUN`` consecutive ids, and the rest."""
    ranges: list[tuple[int, int]] = []
    single: list[int] = []
    ordered = sorted(set(ids))
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            if i - start >= RUN:
                ranges.append((ordered[start], ordered[i - 1]))
            else:
                single += ordered[start:i]
            start = i
    return ranges, single


def mark_sent(db: sqlite3.Connection, ids: Iterable[int], at: float) -> None:
    """Consecutive ids go as id ranges (a backlog, a batch of replies), the rest as a list."""
    ranges, single = id_runs(ids)
    if ranges:
        db.executemany(
            "UPDATE outbox SET state = 'sent', sent_at = ? WHERE id BETWEEN ? AND ?",
            [(at, first, last) for first, last in ranges],
        )
    if single:
        db.execute(
            "UPDATE outbox SET state = 'sent', sent_at = ? "
            "WHERE id IN (SELECT value FROM json_each(?))",
            (at, json.dumps(single)),
        )


def has_retries(db: sqlite3.Connection) -> bool:
    """Whether ``lcbot outbox retry`` marked rows (a read: no write lock needed)."""
    return db.execute("SELECT 1 FROM outbox WHERE state = 'retry' LIMIT 1").fetchone() is not None


def take_retries(db: sqlite3.Connection) -> list[tuple]:
    """Rows ``lcbot outbox retry`` marked while the bot runs; they become pending (at once,
    so that the next look does not take them again)."""
    rows = db.execute(f"SELECT {COLUMNS} FROM outbox WHERE state = 'retry' ORDER BY id").fetchall()
    if rows:
        db.executemany(
            "UPDATE outbox SET state = 'pending', attempts = 0 WHERE id = ? AND state = 'retry'",
            [(row[0],) for row in rows],
        )
    return rows


def pending_critical(db: sqlite3.Connection) -> list[tuple[int, str]]:
    """``(id, text)`` of pending critical alerts not yet sent to the fallback channel."""
    # the pending rows' index, then a sort: SQLite would rather walk the whole table by id
    return db.execute(
        "SELECT id, text FROM outbox INDEXED BY outbox_pending_to WHERE state = 'pending' "
        "AND kind = 'alert:critical' AND fallback_at IS NULL ORDER BY id"
    ).fetchall()


def held_critical(db: sqlite3.Connection, before: float) -> list[tuple[int, str]]:
    """``(id, text)`` of pending critical alerts not yet sent to the fallback whose
    recipient is held (``holds``) and that have waited since before ``before`` — counted
    from the hold's start or the row's creation, whichever is later."""
    # holds first (CROSS JOIN keeps that order): a few rows, each searched in the recipient's
    # pending index at priority 0 (critical alerts' priority) — never a scan of the outbox
    return db.execute(
        "SELECT o.id, o.text FROM holds h CROSS JOIN outbox o ON o.recipient = h.recipient "
        "AND o.state = 'pending' AND o.priority = 0 WHERE o.kind = 'alert:critical' "
        "AND o.fallback_at IS NULL AND max(h.since, o.created) <= ? ORDER BY o.id",
        (before,),
    ).fetchall()


def mark_fallback(db: sqlite3.Connection, ids: list[int], at: float) -> None:
    db.execute(
        "UPDATE outbox SET fallback_at = ? WHERE id IN (SELECT value FROM json_each(?))",
        (at, json.dumps(ids)),
    )


def delete_old(
    db: sqlite3.Connection, before: float, limit: int, after: int = 0, files: list | None = None
) -> tuple[dict[str, int], int | None]:
    """Walk up to ``limit`` rows by id from ``after`` (ids grow with time, so the oldest
    come first) and delete the sent and dead ones created before ``before`` (never pending
    ones). Returns how many of each state went, and the id to go on after — None once a
    newer row (or the end) was reached. The file keys of deleted rows go into ``files``."""
    rows = db.execute(
        "SELECT id, state, created, file FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
        (after, limit),
    ).fetchall()
    gone = {"sent": 0, "dead": 0}
    doomed, last, more = [], after, len(rows) == limit
    for id_, state, created, file in rows:
        if created >= before:
            more = False
            break
        last = id_
        if state in gone:
            doomed.append(id_)
            gone[state] += 1
            if file is not None and files is not None:
                files.append(file)
    if doomed:
        db.execute(
            "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(doomed),)
        )
    return gone, (last if more else None)


# --- the CLI (`lcbot outbox …`) -----------------------------------------------------------


def list_rows(db: sqlite3.Connection, state: str | None, limit: int) -> list[dict[str, Any]]:
    """Newest first, as dicts with the keys of ``LIST_COLUMNS`` plus ``text`` and ``held``
    (the hold's reason for a pending row whose recipient is held, else None)."""
    where, params = ("WHERE o.state = ?", (state,)) if state else ("", ())
    columns = ", ".join(f"o.{name}" for name in LIST_COLUMNS)
    rows = db.execute(
        f"SELECT {columns}, o.text, h.reason FROM outbox o LEFT JOIN holds h "
        f"ON h.recipient = o.recipient AND o.state = 'pending' {where} "
        "ORDER BY o.id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [dict(zip((*LIST_COLUMNS, "text", "held"), row, strict=True)) for row in rows]


def state_of(db: sqlite3.Connection, message_id: int) -> str | None:
    row = db.execute("SELECT state FROM outbox WHERE id = ?", (message_id,)).fetchone()
    return row[0] if row else None


def retry(db: sqlite3.Connection, message_id: int | None = None) -> int:
    """Mark one dead message (or every dead one, ``message_id`` None) for retry."""
    if message_id is None:
        return db.execute("UPDATE outbox SET state = 'retry' WHERE state = 'dead'").rowcount
    return db.execute(
        "UPDATE outbox SET state = 'retry' WHERE id = ? AND state = 'dead'", (message_id,)
    ).rowcount


def purge_sent(db: sqlite3.Connection, sent_before: float) -> int:
    return db.execute(
        "DELETE FROM outbox WHERE state = 'sent' AND sent_at <= ?", (sent_before,)
    ).rowcount


def since(db: sqlite3.Connection, after_id: int) -> list[tuple[int, str, str]]:
    """``(id, recipient, text)`` of every row with an id above ``after_id`` (the test kit)."""
    return db.execute(
        "SELECT id, recipient, text FROM outbox WHERE id > ? ORDER BY id", (after_id,)
    ).fetchall()
