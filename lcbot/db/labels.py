"""SQL for label-based alert state: ``label_silences`` (silences by matchers,
``lcbot.silencing``) and ``inhibit_sources`` (firing alerts that inhibit, ``lcbot.inhibit``).
Matchers and labels are stored as JSON text."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping


def load_silences(db: sqlite3.Connection, after: float) -> list[tuple]:
    """``(id, matchers, starts, until, author, comment)`` of silences ending after
    ``after``, newest first; ``matchers`` a list of texts."""
    rows = db.execute(
        "SELECT id, matchers, starts, until, author, comment FROM label_silences "
        "WHERE until > ? ORDER BY starts DESC, id",
        (after,),
    ).fetchall()
    return [(row[0], json.loads(row[1]), *row[2:]) for row in rows]


def save_silence(
    db: sqlite3.Connection,
    silence_id: str,
    matchers: list[str],
    starts: float,
    until: float,
    author: str | None,
    comment: str | None,
) -> None:
    db.execute(
        "INSERT OR REPLACE INTO label_silences VALUES (?, ?, ?, ?, ?, ?)",
        (silence_id, json.dumps(matchers), starts, until, author, comment),
    )


def end_silence(db: sqlite3.Connection, silence_id: str, now: float) -> bool:
    """End a silence in force now; False if there is none with that id."""
    cursor = db.execute(
        "UPDATE label_silences SET until = ? WHERE id = ? AND until > ?", (now, silence_id, now)
    )
    return cursor.rowcount > 0


def delete_ended_silences(db: sqlite3.Connection, before: float) -> int:
    return db.execute("DELETE FROM label_silences WHERE until <= ?", (before,)).rowcount


def load_sources(db: sqlite3.Connection) -> list[tuple[str, dict[str, str]]]:
    rows = db.execute("SELECT fingerprint, labels FROM inhibit_sources").fetchall()
    return [(fp, json.loads(labels)) for fp, labels in rows]


def save_source(db: sqlite3.Connection, fp: str, labels: Mapping[str, str], since: float) -> None:
    db.execute(
        "INSERT OR IGNORE INTO inhibit_sources VALUES (?, ?, ?)",
        (fp, json.dumps(dict(labels), sort_keys=True), since),
    )


def delete_source(db: sqlite3.Connection, fp: str) -> None:
    db.execute("DELETE FROM inhibit_sources WHERE fingerprint = ?", (fp,))
