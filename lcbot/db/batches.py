"""Retention in small batches: walk a table by id (ids grow with time) and delete the rows
older than a cut-off, a bounded number per transaction, so a long history never holds the
write lock for long."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from lcbot.db import Busy, transaction


def delete_before(
    db: sqlite3.Connection, table: str, before: float, limit: int, after: int = 0
) -> tuple[int, int | None]:
    """Walk up to ``limit`` rows of ``table`` by id from ``after`` and delete those whose
    ``at`` is before ``before``. Returns how many went and the id to go on after — None once
    a newer row (or the end) was reached."""
    rows = db.execute(
        f"SELECT id, at FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
    ).fetchall()
    last, more, doomed = after, len(rows) == limit, 0
    for id_, at in rows:
        if at >= before:
            more = False
            break
        last, doomed = id_, doomed + 1
    if doomed:
        db.execute(f"DELETE FROM {table} WHERE id > ? AND id <= ?", (after, last))
    return doomed, (last if more else None)


def expire_step(
    conn: sqlite3.Connection | None,
    delete_old: Callable[[sqlite3.Connection, float, int, int], tuple[int, int | None]],
    before: float,
    limit: int,
    after: int | None,
) -> tuple[int, int | None] | None:
    """One retention batch in its own transaction: ``delete_old``'s (deleted, go on after);
    None when another process holds the write lock (try again next round)."""
    assert conn is not None, "the database is not open"
    try:
        with transaction(conn):
            return delete_old(conn, before, limit, after or 0)
    except Busy:
        return None


class Expiry:
    """Retention of one table in batches (``delete_old`` as for ``expire_step``),
    remembering where the last batch stopped."""

    def __init__(
        self, delete_old: Callable[[sqlite3.Connection, float, int, int], tuple[int, int | None]]
    ) -> None:
        self.delete_old = delete_old
        self.after: int | None = None

    def step(self, conn: sqlite3.Connection | None, before: float, limit: int) -> tuple[int, bool]:
        """Delete rows older than ``before`` (looking at ``limit``): (deleted, more left)."""
        step = expire_step(conn, self.delete_old, before, limit, self.after)
        if step is None:
            return 0, False
        gone, self.after = step
        return gone, self.after is not None
