"""The schema of ``lcbot.db``, as numbered migrations (``PRAGMA user_version``).

Tables: ``outbox`` (every outgoing message; a file message names its bytes in
``<data_dir>/files/``), ``alerts`` (every alert with its routing
outcome), ``alert_keys`` (de-duplication state), ``silences``, ``mutes``, ``pairing``
(one-time codes, keyed hashes), ``pairing_failures`` (wrong codes, for the throttle) and
``plugin_state`` (each plugin's key/value store), ``heartbeats`` (dead-man's switches:
each key's period and last beat), ``metric_series`` and ``metric_points`` (job and host
metrics), ``holds`` (recipients a gated transport makes wait: ``lcbot.holds``),
``label_silences`` (silences by label matchers: ``lcbot.silencing``), ``inhibit_sources``
(firing alerts that inhibit others: ``lcbot.inhibit``), ``firing`` (alerts firing now,
their acks and escalation: ``lcbot.firing``), ``oncall_override`` (``oncall take``),
``audit`` (every command invocation: ``lcbot.audit``). ``migrate``
upgrades older files in place, once, under the write lock.
"""

from __future__ import annotations

import sqlite3

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
    # 4: an index for every query the running bot repeats (one partial index per state it
    # looks up: SQLite does not use a partial index on `state IN (…)` for `state = 'retry'`)
    # and plugin state. Retention walks rows by id (ids grow with time): no index by age.
    """
    DROP INDEX IF EXISTS outbox_open;
    CREATE INDEX outbox_pending ON outbox (id) WHERE state = 'pending';
    CREATE INDEX outbox_retry ON outbox (id) WHERE state = 'retry';
    CREATE INDEX outbox_dead ON outbox (id) WHERE state = 'dead';
    CREATE INDEX alert_keys_last_sent ON alert_keys (last_sent);
    CREATE TABLE plugin_state (
        plugin  TEXT NOT NULL,
        key     TEXT NOT NULL,
        value   TEXT NOT NULL,
        PRIMARY KEY (plugin, key)
    ) WITHOUT ROWID;
    """,
    # 5: durable progress of long messages sent in parts; a recipient's backlog read in
    # windows (priority, then age); wrong pairing codes remembered across restarts
    """
    ALTER TABLE outbox ADD COLUMN parts_sent INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX outbox_pending_to ON outbox (recipient, priority, id) WHERE state = 'pending';
    CREATE TABLE pairing_failures (contact TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX pairing_failures_contact ON pairing_failures (contact, at);
    """,
    # 6: files and images: the row names its bytes in <data_dir>/files/ (``file``, a key)
    # and their size; ``text`` holds the file's name
    """
    ALTER TABLE outbox ADD COLUMN file TEXT;
    ALTER TABLE outbox ADD COLUMN file_size INTEGER;
    """,
    # 7: heartbeats (dead-man's switches): a beat (any process) upserts its row and takes
    # the next ``seq``, which the running bot polls; ``late`` is the bot's own mark (the
    # last beat it went late after); ``removed`` a tombstone the bot deletes once seen
    """
    CREATE TABLE heartbeats (
        key        TEXT PRIMARY KEY,
        every      REAL    NOT NULL,
        grace      REAL    NOT NULL DEFAULT 0,
        level      TEXT    NOT NULL DEFAULT 'warning',
        source     TEXT,
        created    REAL    NOT NULL,
        last_beat  REAL    NOT NULL,
        late       REAL,
        removed    INTEGER NOT NULL DEFAULT 0,
        seq        INTEGER NOT NULL
    );
    CREATE INDEX heartbeats_seq ON heartbeats (seq);
    """,
    # 8: job and host metrics (lcbot.metrics): one row per series, points by series and time
    # (the plot query); retention walks points by id, like the outbox
    """
    CREATE TABLE metric_series (
        id      INTEGER PRIMARY KEY,
        source  TEXT NOT NULL,
        name    TEXT NOT NULL,
        UNIQUE (source, name)
    );
    CREATE TABLE metric_points (
        id      INTEGER PRIMARY KEY,
        series  INTEGER NOT NULL,
        at      REAL    NOT NULL,
        step    INTEGER,
        value   REAL    NOT NULL
    );
    CREATE INDEX metric_points_series ON metric_points (series, at);
    """,
    # 9: holds: recipients a gated transport (iLink's reply window) makes wait, with why
    # and since when (wall time: the fallback compares it with rows' ``created``)
    """
    CREATE TABLE holds (
        recipient  TEXT PRIMARY KEY,
        reason     TEXT NOT NULL,
        since      REAL NOT NULL
    );
    """,
    # 10: labels: alerts carry labels (JSON text); silences by label matchers (``id`` a
    # short hex, ``matchers`` a JSON list of matcher texts); the firing alerts that inhibit
    # others (``lcbot.inhibit``), by fingerprint of their labels
    """
    ALTER TABLE alerts ADD COLUMN labels TEXT;
    CREATE TABLE label_silences (
        id        TEXT PRIMARY KEY,
        matchers  TEXT NOT NULL,
        starts    REAL NOT NULL,
        until     REAL NOT NULL,
        author    TEXT,
        comment   TEXT
    );
    CREATE TABLE inhibit_sources (
        fingerprint  TEXT PRIMARY KEY,
        labels       TEXT NOT NULL,
        since        REAL NOT NULL
    );
    """,
    # 11: on call: the one override of the rota (``oncall take``), in force until ``until``
    # (the next handover), with who asked and when
    """
    CREATE TABLE oncall_override (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        user   TEXT NOT NULL,
        until  REAL NOT NULL,
        by     TEXT NOT NULL,
        at     REAL NOT NULL
    );
    """,
    # 12: firing alerts (lcbot.firing): one row per alert identity (key or label fingerprint)
    # while it fires, kept once resolved (who, when) until retention; the short id is the
    # row id (AUTOINCREMENT: never reused); ack state; the escalation step and next-due
    # times (lcbot.escalation), so a restart resumes an escalation where it was
    """
    CREATE TABLE firing (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        ident          TEXT    NOT NULL,
        level          TEXT    NOT NULL,
        title          TEXT,
        text           TEXT    NOT NULL,
        labels         TEXT    NOT NULL DEFAULT '{}',
        recipients     TEXT    NOT NULL DEFAULT '[]',
        first_seen     REAL    NOT NULL,
        last_seen      REAL    NOT NULL,
        acked_by       TEXT,
        acked_at       REAL,
        step           INTEGER NOT NULL DEFAULT 0,
        next_renotify  REAL,
        next_escalate  REAL,
        resolved_at    REAL,
        resolved_by    TEXT
    );
    CREATE UNIQUE INDEX firing_open ON firing (ident) WHERE resolved_at IS NULL;
    CREATE INDEX firing_resolved ON firing (resolved_at) WHERE resolved_at IS NOT NULL;
    """,
    # 13: audit: every command invocation — who, what, allowed or denied and by what, outcome
    """
    CREATE TABLE audit (
        id         INTEGER PRIMARY KEY,
        at         REAL    NOT NULL,
        user       TEXT    NOT NULL,
        contact    TEXT,
        command    TEXT    NOT NULL,
        extra      TEXT,
        decision   TEXT    NOT NULL,
        by         TEXT    NOT NULL DEFAULT '',
        outcome    TEXT,
        duration   REAL    NOT NULL DEFAULT 0,
        transport  TEXT    NOT NULL DEFAULT '',
        room       TEXT
    );
    CREATE INDEX audit_at ON audit (at);
    """,
    # 14: no ``outbox_pending`` (id) index: every pending query is by recipient and uses
    # ``outbox_pending_to``; each sent mark then updates one index fewer (about 30 % of it)
    """
    DROP INDEX IF EXISTS outbox_pending;
    """,
]


def migrate(db: sqlite3.Connection) -> None:
    """Bring ``db`` to the latest schema (a no-op when it is there already)."""
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
