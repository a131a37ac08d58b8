"""SQL for the ``firing`` table: the alerts firing now (``lcbot.firing``), their acks and
their escalation state (``lcbot.escalation``)."""

from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from typing import Any

from lcbot.db.rows import in_chunks, values

COLUMNS = (
    "id, ident, level, title, text, labels, recipients, first_seen, last_seen, "
    "acked_by, acked_at, step, next_renotify, next_escalate"
)


def _row(f: Any) -> tuple:
    return (
        f.id,
        f.ident,
        f.level,
        f.title,
        f.text,
        json.dumps(f.labels, ensure_ascii=False, sort_keys=True),
        json.dumps(f.recipients, ensure_ascii=False),
        f.first_seen,
        f.last_seen,
        f.acked_by,
        f.acked_at,
        f.step,
        f.next_renotify,
        f.next_escalate,
    )


def save(db: sqlite3.Connection, f: Any) -> None:
    """Insert or update one firing alert (a ``lcbot.firing.FiringAlert``)."""
    db.execute(f"INSERT OR REPLACE INTO firing ({COLUMNS}) VALUES ({', '.join('?' * 14)})", _row(f))


def touch(db: sqlite3.Connection, seen: list[tuple[int, float]]) -> None:
    """Firing alerts seen again (de-duplicated): only ``last_seen`` changes, never back."""
    in_chunks(db, _touch, seen)


@lru_cache(maxsize=16)
def _touch(width: int, size: int) -> str:
    return (
        f"WITH seen(id, at) AS (VALUES {values(width, size)}) UPDATE firing SET last_seen = "
        "max(last_seen, (SELECT at FROM seen WHERE seen.id = firing.id)) "
        "WHERE id IN (SELECT id FROM seen)"
    )


def resolve(db: sqlite3.Connection, firing_id: int, at: float, by: str | None) -> None:
    """Mark a firing alert resolved (``by``: who, None when its resolved alert came)."""
    db.execute(
        "UPDATE firing SET resolved_at = ?, resolved_by = ? WHERE id = ? AND resolved_at IS NULL",
        (at, by, firing_id),
    )


def load(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every alert firing now, oldest first, as dicts of ``COLUMNS``."""
    rows = db.execute(
        f"SELECT {COLUMNS} FROM firing WHERE resolved_at IS NULL ORDER BY id"
    ).fetchall()
    names = [c.strip() for c in COLUMNS.split(",")]
    found = []
    for row in rows:
        item = dict(zip(names, row, strict=True))
        item["labels"] = json.loads(item["labels"] or "{}")
        item["recipients"] = json.loads(item["recipients"] or "[]")
        found.append(item)
    return found


def last_id(db: sqlite3.Connection) -> int:
    """The highest short id ever given (ids are never reused)."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'firing'").fetchone()
    (top,) = db.execute("SELECT coalesce(max(id), 0) FROM firing").fetchone()
    return max(int(row[0]) if row else 0, int(top))


def expire(db: sqlite3.Connection, before: float) -> int:
    """Forget alerts resolved before ``before``; returns how many."""
    return db.execute(
        "DELETE FROM firing WHERE resolved_at IS NOT NULL AND resolved_at < ?", (before,)
    ).rowcount
