"""SQL for the ``holds`` table: recipients whose messages a gated transport makes wait.

One row per held recipient: ``reason`` (one line, the transport's), ``since`` (wall time
the hold began). Written only by the drainer's ``Holds`` through ``Outbox.record``; read
by ``lcbot outbox list`` and the fallback (``lcbot.db.outbox``).
"""

from __future__ import annotations

import sqlite3


def put(db: sqlite3.Connection, recipient: str, reason: str, since: float) -> None:
    """Record a hold; a recipient held already keeps its ``since`` (the reason may change)."""
    db.execute(
        "INSERT INTO holds (recipient, reason, since) VALUES (?, ?, ?) "
        "ON CONFLICT (recipient) DO UPDATE SET reason = excluded.reason",
        (recipient, reason, since),
    )


def clear(db: sqlite3.Connection, recipient: str) -> None:
    db.execute("DELETE FROM holds WHERE recipient = ?", (recipient,))


def all_holds(db: sqlite3.Connection) -> dict[str, tuple[str, float]]:
    """``{recipient: (reason, since)}``."""
    rows = db.execute("SELECT recipient, reason, since FROM holds").fetchall()
    return {recipient: (reason, since) for recipient, reason, since in rows}
