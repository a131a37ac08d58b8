"""SQL for ``oncall_override``: who took on call (``oncall take``) until when — one row."""

from __future__ import annotations

import sqlite3


def load_override(db: sqlite3.Connection, now: float) -> tuple[str, float, str] | None:
    """``(user, until, by)`` of the override in force at ``now``, or None."""
    return db.execute(
        "SELECT user, until, by FROM oncall_override WHERE id = 1 AND until > ?", (now,)
    ).fetchone()


def save_override(db: sqlite3.Connection, user: str, until: float, by: str, at: float) -> None:
    db.execute(
        "INSERT OR REPLACE INTO oncall_override (id, user, until, by, at) VALUES (1, ?, ?, ?, ?)",
        (user, until, by, at),
    )
