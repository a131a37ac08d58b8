"""The lcbot database (``<data_dir>/lcbot.db``): one SQLite file in WAL mode, shared by the
running bot and CLI commands (``lcbot alert``, ``lcbot outbox …``).

Tables: ``outbox`` (every outgoing message), ``alerts`` (every alert with its routing
outcome), ``alert_keys`` (de-duplication state), ``silences``, ``mutes`` and ``pairing``
(hashed one-time codes). The schema
version is kept in ``PRAGMA user_version``; ``connect`` upgrades older files in place.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lcbot.errors import ConfigError

DB_NAME = "lcbot.db"

MIGRATIONS = [
    # 1: the outbox
    """
    CREATE TABLE IF NOT EXISTS outbox (
        id          INTEGER PRIMARY KEY,
        recipient   TEXT    NOT NULL,
        text        TEXT    NOT NULL,
        kind        TEXT    NOT NULL DEFAULT 'reply',
        state       TEXT    NOT NULL DEFAULT 'pending',
        attempts    INTEGER NOT NULL DEFAULT 0,
        created     REAL    NOT NULL,
        sent_at     REAL,
        last_error  TEXT
    );
    """,
    # 2: priorities, CLI retries, fallback marks, alerts, silences, mutes
    """
    ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN fallback_at REAL;
    DROP INDEX IF EXISTS outbox_pending;
    CREATE INDEX outbox_open ON outbox (id) WHERE state IN ('pending', 'retry');
    CREATE TABLE alerts (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        created   REAL    NOT NULL,
        text      TEXT    NOT NULL,
        level     TEXT    NOT NULL,
        title     TEXT,
        key       TEXT,
        resolved  INTEGER NOT NULL DEFAULT 0,
        source    TEXT,
        state     TEXT    NOT NULL DEFAULT 'new',
        outcome   TEXT
    );
    CREATE INDEX alerts_new ON alerts (id) WHERE state = 'new';
    CREATE TABLE alert_keys (
        key          TEXT PRIMARY KEY,
        last_sent    REAL NOT NULL,
        repeats      INTEGER NOT NULL DEFAULT 0,
        first_repeat REAL
    );
    CREATE TABLE silences (key TEXT PRIMARY KEY, until REAL NOT NULL, by TEXT);
    CREATE TABLE mutes (user TEXT PRIMARY KEY, until REAL NOT NULL);
    """,
    # 3: pairing codes (hashed) for binding a WeChat contact to a user
    """
    CREATE TABLE pairing (code_hash TEXT PRIMARY KEY, user TEXT NOT NULL, expires REAL NOT NULL);
    """,
]


def connect(path: Path, create: bool = True) -> sqlite3.Connection:
    """Open (and create or upgrade) the database in WAL mode, autocommit."""
    if not create and not path.exists():
        raise FileNotFoundError(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        _migrate(db)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"cannot open the database {path} (check [bot] data_dir): {exc}"
        ) from None
    return db


def _migrate(db: sqlite3.Connection) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version >= len(MIGRATIONS):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()  # another process won?
        for number, script in enumerate(MIGRATIONS[version:], version + 1):
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
