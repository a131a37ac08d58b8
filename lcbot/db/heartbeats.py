"""SQL for heartbeats (dead-man's switches): the ``heartbeats`` table.

A beat — from ``lcbot heartbeat``, the HTTP listener's worker thread or the running bot's
writer — upserts its row and gives it the next ``seq``; the running bot reads the rows
whose ``seq`` is above the last it saw (``changed``), so it sees a beat of another process
at its next poll. Only the bot writes ``late`` (it raised the late alert) and deletes
tombstones (``removed``: ``lcbot heartbeat KEY --remove`` while it may be running).
"""

from __future__ import annotations

import sqlite3

COLUMNS = "key, every, grace, level, source, last_beat, late, removed, seq"
_NEXT_SEQ = "(SELECT coalesce(max(seq), 0) + 1 FROM heartbeats)"


def beat(
    db: sqlite3.Connection,
    key: str,
    every: float,
    grace: float,
    level: str,
    source: str | None,
    now: float,
) -> None:
    """Record a beat of ``key`` at ``now`` (created by its first beat; period, grace and
    level are the latest beat's)."""
    db.execute(
        "INSERT INTO heartbeats (key, every, grace, level, source, created, last_beat, seq) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, {_NEXT_SEQ}) "
        "ON CONFLICT (key) DO UPDATE SET every = excluded.every, grace = excluded.grace, "
        "level = excluded.level, source = excluded.source, last_beat = excluded.last_beat, "
        "removed = 0, seq = excluded.seq",
        (key, every, grace, level, source, now, now),
    )


def remove(db: sqlite3.Connection, key: str) -> bool:
    """Mark ``key`` removed (a tombstone for the running bot); False if there is none."""
    return (
        db.execute(
            f"UPDATE heartbeats SET removed = 1, seq = {_NEXT_SEQ} WHERE key = ? AND removed = 0",
            (key,),
        ).rowcount
        > 0
    )


def load(db: sqlite3.Connection) -> list[tuple]:
    """Every row (tombstones too) as ``COLUMNS`` tuples, in ``seq`` order."""
    return db.execute(f"SELECT {COLUMNS} FROM heartbeats ORDER BY seq").fetchall()


def changed(db: sqlite3.Connection, after: int) -> list[tuple]:
    """Rows beaten or removed since ``seq`` ``after``, in ``seq`` order."""
    return db.execute(
        f"SELECT {COLUMNS} FROM heartbeats WHERE seq > ? ORDER BY seq", (after,)
    ).fetchall()


def listing(db: sqlite3.Connection) -> list[tuple]:
    """The heartbeats (no tombstones) by key, as ``COLUMNS`` tuples."""
    return db.execute(f"SELECT {COLUMNS} FROM heartbeats WHERE removed = 0 ORDER BY key").fetchall()


def mark_late(db: sqlite3.Connection, key: str, late: float | None) -> None:
    """The bot raised (a float: the beat it went late after) or resolved (None) the alert."""
    db.execute("UPDATE heartbeats SET late = ? WHERE key = ?", (late, key))


def forget(db: sqlite3.Connection, key: str, seq: int) -> None:
    """Delete ``key``'s tombstone once the bot has seen it (not if a beat revived it)."""
    db.execute("DELETE FROM heartbeats WHERE key = ? AND removed = 1 AND seq <= ?", (key, seq))


def delete(db: sqlite3.Connection, key: str) -> None:
    """Delete ``key`` (the running bot removed it)."""
    db.execute("DELETE FROM heartbeats WHERE key = ?", (key,))
