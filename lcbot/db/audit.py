"""SQL for ``audit``: one row per command invocation (``lcbot.audit``)."""

from __future__ import annotations

import sqlite3
from typing import Any

from lcbot.db.batches import delete_before
from lcbot.db.rows import insert_rows

COLUMNS = (
    "at",
    "user",
    "contact",
    "command",
    "extra",
    "decision",
    "by",
    "outcome",
    "duration",
    "transport",
    "room",
)
Row = tuple[Any, ...]  # the values of COLUMNS, in that order

_HEAD = f"INSERT INTO audit ({', '.join(COLUMNS)})"
_INSERT = f"{_HEAD} VALUES ({', '.join('?' * len(COLUMNS))})"


def insert(db: sqlite3.Connection, row: Row) -> None:
    """Store one invocation."""
    db.execute(_INSERT, row)


def _insert_many(db: sqlite3.Connection, calls: list[tuple[Row]]) -> None:
    """Store the rows of consecutive ``insert`` calls in few statements."""
    insert_rows(db, _HEAD, [row for (row,) in calls])


insert.many = _insert_many  # type: ignore[attr-defined]  # lcbot.message.run_ops


def recent(
    db: sqlite3.Connection, limit: int, user: str | None = None, since: float | None = None
) -> list[dict[str, Any]]:
    """The latest ``limit`` rows (of ``user``, from epoch ``since`` on), newest first."""
    where, args = [], []
    if user is not None:
        where.append("user = ?")
        args.append(user)
    if since is not None:
        where.append("at >= ?")
        args.append(since)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.execute(
        f"SELECT id, {', '.join(COLUMNS)} FROM audit{clause} ORDER BY id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [dict(zip(("id", *COLUMNS), row, strict=True)) for row in rows]


def delete_old(
    db: sqlite3.Connection, before: float, limit: int, after: int = 0
) -> tuple[int, int | None]:
    """Retention: delete rows stored before ``before``, ``limit`` looked at (batches)."""
    return delete_before(db, "audit", before, limit, after)
