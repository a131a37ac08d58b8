"""The database layer: the one place that knows SQL.

``<data_dir>/lcbot.db`` is one SQLite file in WAL mode, shared by the running bot and CLI
commands (``lcbot alert``, ``lcbot outbox …``). ``Database`` owns the connections and the
migrations (``lcbot.db.migrations``) and gives ``transaction()``; every statement lives in
a module per table group, behind named functions:

* ``lcbot.db.outbox``: outgoing messages;
* ``lcbot.db.alerts``: alerts, de-duplication keys, silences and mutes;
* ``lcbot.db.pairing``: hashed one-time pairing codes;
* ``lcbot.db.state``: each plugin's key/value store.

Waiting on another process's write lock is bounded: the running bot's own connection
gives up after ``LOOP_BUSY_TIMEOUT`` (the caller retries later), so the event loop never
stalls behind a CLI command or a backup holding ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from lcbot.db.migrations import migrate
from lcbot.errors import ConfigError, LcbotError

DB_NAME = "lcbot.db"
BUSY_TIMEOUT = 10.0  # seconds: CLI commands and worker threads wait this long for the lock
LOOP_BUSY_TIMEOUT = 0.02  # seconds: the event loop's connection gives up after this


class Busy(LcbotError):
    """Another connection holds the write lock; nothing was written. Try again later."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            f"the database is locked by another process ({detail or 'busy'}); try again"
        )


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def connect(path: Path, busy_timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    """Open (and create or upgrade) the database in WAL mode, autocommit.

    ``ConfigError`` (exit 2) names the file when it cannot be opened.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        db.execute(f"PRAGMA busy_timeout = {int(max(BUSY_TIMEOUT, busy_timeout) * 1000)}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        migrate(db)
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"cannot open the database {path} (check [bot] data_dir): {exc}"
        ) from None
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error). ``Busy`` if the lock is taken."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise Busy(str(exc)) from None
        raise
    try:
        yield db
        db.execute("COMMIT")
    except BaseException as exc:
        db.execute("ROLLBACK")
        if is_busy(exc):
            raise Busy(str(exc)) from None
        raise


class Database:
    """The running bot's database: its own connection (``conn``: event-loop thread, short
    lock wait) and one for worker threads (``worker()``: normal lock wait, one at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self._worker: sqlite3.Connection | None = None
        self._worker_lock = threading.Lock()

    def open(self) -> sqlite3.Connection:
        self.conn = connect(self.path, busy_timeout=LOOP_BUSY_TIMEOUT)
        return self.conn

    @contextlib.contextmanager
    def worker(self) -> Iterator[sqlite3.Connection]:
        """The worker-thread connection, held for the block (never use it on the event loop:
        it waits up to ``BUSY_TIMEOUT`` for another process's lock)."""
        with self._worker_lock:
            if self._worker is None:
                self._worker = connect(self.path)
            yield self._worker

    def close(self) -> None:
        with self._worker_lock:
            for db in (self.conn, self._worker):
                if db is not None:
                    db.close()
            self.conn = self._worker = None

    @contextlib.contextmanager
    def opened(self) -> Iterator[sqlite3.Connection]:
        """Open for the life of the ``with`` block."""
        conn = self.open()
        try:
            yield conn
        finally:
            self.close()
