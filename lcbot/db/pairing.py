"""SQL for ``pairing``: one-time codes (stored hashed) that bind a WeChat contact to a user."""

from __future__ import annotations

import sqlite3


def replace_code(
    db: sqlite3.Connection, user: str, code_hash: str, expires: float, now: float
) -> None:
    """Store a new code for ``user``; earlier codes of that user and expired ones go."""
    db.execute("DELETE FROM pairing WHERE lower(user) = lower(?) OR expires <= ?", (user, now))
    db.execute("INSERT INTO pairing VALUES (?, ?, ?)", (code_hash, user, expires))


def revoke(db: sqlite3.Connection, user: str) -> None:
    """Forget every code of ``user`` (any case)."""
    db.execute("DELETE FROM pairing WHERE lower(user) = lower(?)", (user,))


def use_code(db: sqlite3.Connection, code_hash: str, now: float) -> str | None:
    """The user a valid code belongs to, deleting the code; None if there is none."""
    row = db.execute(
        "SELECT user FROM pairing WHERE code_hash = ? AND expires > ?", (code_hash, now)
    ).fetchone()
    if row:
        db.execute("DELETE FROM pairing WHERE code_hash = ?", (code_hash,))
    return row[0] if row else None


def failures_since(db: sqlite3.Connection, contact: str, since: float) -> int:
    """Wrong codes ``contact`` sent since ``since``."""
    (count,) = db.execute(
        "SELECT count(*) FROM pairing_failures WHERE contact = ? AND at > ?", (contact, since)
    ).fetchone()
    return count


def record_failure(db: sqlite3.Connection, contact: str, at: float, forget_before: float) -> None:
    """Remember a wrong code; forget those older than ``forget_before`` (the window)."""
    db.execute(
        "DELETE FROM pairing_failures WHERE contact = ? AND at <= ?", (contact, forget_before)
    )
    db.execute("INSERT INTO pairing_failures VALUES (?, ?)", (contact, at))
