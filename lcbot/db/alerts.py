"""SQL for alerts and their routing state: ``alerts``, ``alert_keys``, ``silences``, ``mutes``.

An alert row is written either by another process (``lcbot alert``, the HTTP listener's
worker thread) in state ``new`` for the running bot to route, or by the bot itself once
it has routed an alert raised in-process, together with its outcome.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from lcbot.db.rows import insert_rows

ALERT_COLUMNS = "id, created, text, level, title, key, resolved, source, labels"


def _labels(alert: Any) -> str | None:
    """An alert's labels as stored: JSON text, or NULL when it has none."""
    labels = getattr(alert, "labels", None)
    return json.dumps(labels, sort_keys=True) if labels else None


def insert_new(db: sqlite3.Connection, alerts: Iterable[Any]) -> list[int]:
    """Store alerts for the running bot to route (state ``new``); returns their ids."""
    ids = []
    for a in alerts:
        cursor = db.execute(
            "INSERT INTO alerts (created, text, level, title, key, resolved, source, labels) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a.created,
                a.text,
                a.level,
                a.title,
                a.key,
                int(a.resolved),
                a.source,
                _labels(a),
            ),
        )
        ids.append(int(cursor.lastrowid))
    return ids


def insert_new_alone(db: sqlite3.Connection, alerts: Iterable[Any]) -> list[int]:
    """``insert_new`` in a savepoint of the caller's transaction: if one row fails, none of
    these alerts is stored (the exception goes on), and the transaction's other rows stay."""
    db.execute("SAVEPOINT alone")
    try:
        ids = insert_new(db, alerts)
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK TO alone")
            db.execute("RELEASE alone")
        raise
    db.execute("RELEASE alone")
    return ids


def take_new(db: sqlite3.Connection, after: int, limit: int) -> list[tuple]:
    """New alerts with an id above ``after``, oldest first, as ``ALERT_COLUMNS`` tuples."""
    return db.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'new' AND id > ? ORDER BY id LIMIT ?",
        (after, limit),
    ).fetchall()


def take_grouped(db: sqlite3.Connection) -> list[tuple]:
    """Alerts grouped but not sent yet (a stop came first), oldest first: read at start."""
    return db.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'grouped' ORDER BY id"
    ).fetchall()


_INSERT_ROUTED_HEAD = (
    "INSERT INTO alerts (created, text, level, title, key, resolved, source, state, outcome, "
    "labels)"
)
_INSERT_ROUTED = f"{_INSERT_ROUTED_HEAD} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _outcome_json(outcome: dict[str, Any]) -> str:
    if len(outcome) == 1 and "state" in outcome and isinstance(outcome["state"], str):
        return _STATE_ONLY.get(outcome["state"]) or json.dumps(outcome)
    return json.dumps(outcome)


_STATE_ONLY = {s: json.dumps({"state": s}) for s in ("deduplicated", "silenced", "suppressed")}


def _routed_row(alert: Any) -> tuple:
    return (
        alert.created,
        alert.text,
        alert.level,
        alert.title,
        alert.key,
        int(alert.resolved),
        alert.source,
        alert.outcome.get("state", "failed"),
        _outcome_json(alert.outcome),
        _labels(alert),
    )


def insert_routed(db: sqlite3.Connection, alert: Any) -> int:
    """Store an alert the bot routed itself, with its outcome; returns its id."""
    return int(db.execute(_INSERT_ROUTED, _routed_row(alert)).lastrowid)


def insert_routed_many(db: sqlite3.Connection, alerts: list[Any]) -> list[int]:
    """``insert_routed`` for many alerts in one ``executemany``; returns their ids, in order
    (consecutive: the caller's transaction holds the write lock, ids only grow)."""
    insert_rows(db, _INSERT_ROUTED_HEAD, [_routed_row(a) for a in alerts])
    last = db.execute("SELECT last_insert_rowid()").fetchone()[0]
    return list(range(last - len(alerts) + 1, last + 1))


def insert_routed_op(db: sqlite3.Connection, alert: Any) -> None:
    """``insert_routed`` as an outbox write: sets ``alert.id``."""
    alert.id = insert_routed(db, alert)


def _insert_routed_many(db: sqlite3.Connection, calls: list[tuple[Any]]) -> None:
    alerts = [alert for (alert,) in calls]
    for alert, id_ in zip(alerts, insert_routed_many(db, alerts), strict=True):
        alert.id = id_


insert_routed_op.many = _insert_routed_many  # type: ignore[attr-defined]  # lcbot.message.run_ops


def write_keys(
    db: sqlite3.Connection, saved: list[tuple[str, float, int, float | None]], gone: list[str]
) -> None:
    """De-duplication keys as they are now: ``saved`` rows stored, ``gone`` keys deleted."""
    insert_rows(db, "INSERT OR REPLACE INTO alert_keys", saved)
    db.executemany("DELETE FROM alert_keys WHERE key = ?", [(k,) for k in gone])


def set_outcome(db: sqlite3.Connection, alert: Any) -> None:
    """Record how a stored alert was routed (hooks may have changed its text and level)."""
    _set_outcomes(db, [(alert,)])


def _set_outcomes(db: sqlite3.Connection, calls: list[tuple[Any]]) -> None:
    db.executemany(
        "UPDATE alerts SET state = ?, outcome = ?, text = ?, level = ? WHERE id = ?",
        [
            (a.outcome.get("state", "failed"), _outcome_json(a.outcome), a.text, a.level, a.id)
            for (a,) in calls
        ],
    )


set_outcome.many = _set_outcomes  # type: ignore[attr-defined]  # lcbot.message.run_ops


def outcome(db: sqlite3.Connection, alert_id: int) -> dict[str, Any] | None:
    """``{"state": …, **outcome}`` of one alert, or None if there is no such alert."""
    row = db.execute("SELECT state, outcome FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    if row is None:
        return None
    return {"state": row[0], **json.loads(row[1] or "{}")}


def recent(db: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    """The newest alerts first, as dicts (``outcome`` decoded)."""
    rows = db.execute(
        "SELECT id, created, level, title, text, key, resolved, source, state, outcome, labels "
        "FROM alerts ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    keys = ("id", "created", "level", "title", "text", "key", "resolved", "source", "state")
    items = []
    for row in rows:
        item = dict(zip(keys, row[:9], strict=True))
        item["resolved"] = bool(item["resolved"])
        item["outcome"] = json.loads(row[9]) if row[9] else None
        item["labels"] = json.loads(row[10]) if row[10] else {}
        items.append(item)
    return items


def delete_old(
    db: sqlite3.Connection, before: float, limit: int, after: int = 0
) -> tuple[int, int | None]:
    """Walk up to ``limit`` alerts by id from ``after`` (oldest first) and delete the routed
    ones created before ``before`` (never new ones). Returns how many went, and the id to go
    on after — None once a newer alert (or the end) was reached."""
    rows = db.execute(
        "SELECT id, state, created FROM alerts WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
    ).fetchall()
    doomed, last, more = [], after, len(rows) == limit
    for id_, state, created in rows:
        if created >= before:
            more = False
            break
        last = id_
        if state not in ("new", "grouped"):  # not routed, or not sent yet
            doomed.append(id_)
    if doomed:
        db.execute(
            "DELETE FROM alerts WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(doomed),)
        )
    return len(doomed), (last if more else None)


# --- de-duplication keys ------------------------------------------------------------------


def load_keys(db: sqlite3.Connection) -> list[tuple[str, float, int, float | None]]:
    return db.execute("SELECT key, last_sent, repeats, first_repeat FROM alert_keys").fetchall()


def delete_key(db: sqlite3.Connection, key: str) -> None:
    db.execute("DELETE FROM alert_keys WHERE key = ?", (key,))


def expire_keys(db: sqlite3.Connection, quiet_before: float, any_before: float) -> int:
    """Forget keys last delivered before ``quiet_before`` with no repeats counted since, and
    every key last delivered before ``any_before``."""
    quiet = db.execute(
        "DELETE FROM alert_keys WHERE last_sent < ? AND repeats = 0", (quiet_before,)
    ).rowcount
    return quiet + db.execute("DELETE FROM alert_keys WHERE last_sent < ?", (any_before,)).rowcount


# --- silences and mutes ---------------------------------------------------------------------


def load_silences(db: sqlite3.Connection, now: float) -> list[tuple[str, float, str]]:
    return db.execute("SELECT key, until, by FROM silences WHERE until > ?", (now,)).fetchall()


def save_silence(db: sqlite3.Connection, key: str, until: float, by: str) -> None:
    db.execute("INSERT OR REPLACE INTO silences VALUES (?, ?, ?)", (key, until, by))


def delete_silence(db: sqlite3.Connection, key: str) -> None:
    db.execute("DELETE FROM silences WHERE key = ?", (key,))


def load_mutes(db: sqlite3.Connection, now: float) -> list[tuple[str, float]]:
    return db.execute("SELECT user, until FROM mutes WHERE until > ?", (now,)).fetchall()


def save_mute(db: sqlite3.Connection, user: str, until: float) -> None:
    db.execute("INSERT OR REPLACE INTO mutes VALUES (?, ?)", (user, until))


def delete_mute(db: sqlite3.Connection, user: str) -> None:
    db.execute("DELETE FROM mutes WHERE user = ?", (user,))


def expire_silences_and_mutes(db: sqlite3.Connection, now: float) -> None:
    db.execute("DELETE FROM silences WHERE until <= ?", (now,))
    db.execute("DELETE FROM mutes WHERE until <= ?", (now,))


# --- the CLI ---------------------------------------------------------------------------------


def purge(db: sqlite3.Connection, before: float) -> int:
    """Delete routed alerts created before ``before`` (``lcbot alerts purge``)."""
    return db.execute("DELETE FROM alerts WHERE created < ? AND state != 'new'", (before,)).rowcount
