"""The database layer: the one place that knows SQL.

``<data_dir>/lcbot.db`` is one SQLite file in WAL mode, shared by the running bot and CLI
commands (``lcbot alert``, ``lcbot outbox …``). ``Database`` owns the connections and the
migrations (``lcbot.db.migrations``) and gives ``transaction()``; every statement lives in
a module per table group, behind named functions:

* ``lcbot.db.outbox``: outgoing messages;
* ``lcbot.db.alerts``: alerts, de-duplication keys, silences and mutes;
* ``lcbot.db.pairing``: hashed one-time pairing codes;
* ``lcbot.db.state``: each plugin's key/value store;
* ``lcbot.db.heartbeats``: heartbeats (dead-man's switches);
* ``lcbot.db.holds``: recipients a gated transport makes wait;
* ``lcbot.db.audit``: the audit log of command invocations.

``lcbot.db.rows`` writes many rows in few statements; ``lcbot.db.checkpoint`` checkpoints
the running bot's WAL from a thread, so its event loop's commits never do.

Waiting on another process's write lock is bounded: the running bot's own connection
gives up after ``LOOP_BUSY_TIMEOUT`` (the caller retries later), so the event loop never
stalls behind a CLI command or a backup holding ``BEGIN IMMEDIATE``.

The file holds every message and alert text: the data dir is made 0700 and the database
0600 whatever the umask (SQLite gives its ``-wal`` and ``-shm`` files the database's
mode), and looser modes of existing files are tightened when they are opened.

A damaged file is never written to: ``connect()`` runs ``PRAGMA quick_check`` before
anything else (always for the bot, which checks once at start; for CLI commands when the
file is at most ``CHECK_LIMIT`` bytes, or once damage has been found in it), and SQLite's
"malformed" / "not a database" errors become ``Damaged``, which names the file and points
at the README's recovery section.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from lcbot.db.checkpoint import LOOP_AUTOCHECKPOINT, Checkpointer
from lcbot.db.migrations import migrate
from lcbot.errors import ConfigError, LcbotError

DB_NAME = "lcbot.db"
BUSY_TIMEOUT = 10.0  # seconds: CLI commands and worker threads wait this long for the lock
LOOP_BUSY_TIMEOUT = 0.02  # seconds: the event loop's connection gives up after this
# CLI commands check files up to this size whole (~30 ms at the limit from the page
# cache); the bot checks at every start whatever the size (~170 ms per 100 MB).
CHECK_LIMIT = 16 * 2**20
SIDECARS = ("-wal", "-shm", "-journal")
DAMAGED_NOTE = "-damaged"  # lcbot.db-damaged: a check found damage; check it whole again
# What lcbot keeps in its data dir: only a folder holding nothing else is made 0700 when
# it exists already (a data_dir of ".", ~ or /tmp must not lose its mode).
OWN_FILES = frozenset(
    {
        DB_NAME,
        *(DB_NAME + s for s in (*SIDECARS, DAMAGED_NOTE)),
        "lcbot.lock",
        "wechaty",
        "pairing.key",
        "files",  # lcbot.files: file messages waiting to be sent
        "received",  # the console's copies of files it printed
        "wechat-login.json",  # the WeChat login state (lcbot.login_file)
        "login-qr.png",
        "wechat-owner.json",  # the account [wechaty] self_user trusts
        "jobs.sock",  # lcbot.jobsock: where local jobs connect
        "jobs-seen.json",  # job processes announced already
    }
)
RECOVERY = 'see "Recovering a damaged database" in lcbot\'s README'
_DAMAGE_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB


class Busy(LcbotError):
    """Another connection holds the write lock; nothing was written. Try again later."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            f"the database is locked by another process ({detail or 'busy'}); try again"
        )


class Damaged(LcbotError):
    """The database file is corrupt; lcbot writes nothing into it (exit 1). Raise it with
    ``damaged()``, which leaves the note that makes every later open check the whole file."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        detail = " ".join(detail.replace("*** in database main ***", "").split())[:200]
        super().__init__(
            f"the database {path} is damaged ({detail}); nothing was written to it. "
            f"With the bot stopped, recover the file or start afresh: {RECOVERY}"
        )


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def is_damage(exc: BaseException) -> bool:
    """SQLite's "database disk image is malformed" or "file is not a database"."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python ≥ 3.11
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    return type(exc) is sqlite3.DatabaseError


def _note(path: Path) -> Path:
    return path.with_name(path.name + DAMAGED_NOTE)


def damaged(path: Path, detail: str) -> Damaged:
    """``Damaged`` for ``path``, noted beside it (``lcbot.db-damaged``): until a full
    check passes again, every open checks the whole file, however large."""
    with contextlib.suppress(OSError):
        fd = os.open(_note(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(detail + "\n")
    return Damaged(path, detail)


@contextlib.contextmanager
def reporting(path: Path) -> Iterator[None]:
    """Turn SQLite's damage errors raised in the block into ``Damaged`` naming ``path``."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            raise damaged(path, str(exc)) from None
        raise


def _tighten(path: Path, private: int) -> None:
    """Drop ``path``'s mode bits outside ``private`` (nothing when it is missing, or when
    this user may not change it)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & ~private:
            os.chmod(path, mode & private)
    except (FileNotFoundError, PermissionError):
        pass


def private_dir(folder: Path) -> str | None:
    """Create ``folder`` 0700 (missing parents as the umask says), or tighten an existing
    one that holds only lcbot's files. Returns a warning when an existing folder stays open
    to other users. ``OSError`` when it cannot be created."""
    try:
        folder.mkdir(mode=0o700)
        return None
    except FileNotFoundError:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    except FileExistsError:
        if not folder.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(folder)) from None
    mode = stat.S_IMODE(folder.stat().st_mode)
    if not mode & 0o077:
        return None
    with contextlib.suppress(OSError):  # unreadable: treated as holding other files
        if set(os.listdir(folder)) <= OWN_FILES:
            _tighten(folder, 0o700)
            return None
    return (
        f"the data dir {folder} is open to other users (mode {mode:04o}) and holds other "
        f"files, so lcbot leaves its mode alone; lcbot's files in it are 0600 "
        f"(`chmod 700 {folder}` to close it)"
    )


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing; tighten an existing one to 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        _tighten(path, 0o600)


def _verify(
    db: sqlite3.Connection, path: Path, verify: bool | None, tables: tuple[str, ...]
) -> None:
    """``PRAGMA quick_check``: ``Damaged`` if it finds a problem. The whole file (it reads
    every page: ~1.7 ms per MB from the page cache, ~10 ms per MB from disk), or, for a CLI
    command on a file above ``CHECK_LIMIT`` not noted as damaged, only ``tables`` (small
    ones, such as ``pairing``: under 1 ms)."""
    if verify is False:
        return
    note = _note(path)
    whole = verify or note.exists() or path.stat().st_size <= CHECK_LIMIT
    if whole:
        pragmas = ["quick_check(1)"]
    else:  # tables an older file lacks are created by migrate(), after this check
        known = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        pragmas = [f"quick_check({table})" for table in tables if table in known]
    for pragma in pragmas:
        rows = db.execute(f"PRAGMA {pragma}").fetchall()
        if rows != [("ok",)]:
            raise damaged(path, str(rows[0][0]) if rows else "quick_check answered nothing")
    if whole:  # a file put back after a recovery, or a false alarm
        with contextlib.suppress(FileNotFoundError, PermissionError):
            note.unlink()


def connect(
    path: Path,
    busy_timeout: float = BUSY_TIMEOUT,
    verify: bool | None = None,
    tables: tuple[str, ...] = (),
) -> sqlite3.Connection:
    """Open (and create or upgrade) the database in WAL mode, autocommit.

    The data dir is created 0700 and the file 0600 (see ``private_dir``). ``verify``: run
    ``PRAGMA quick_check`` first (True: always; None: when the file is at most
    ``CHECK_LIMIT`` bytes, else on ``tables`` only; False: never). ``Damaged`` (exit 1)
    for a corrupt file, before anything is written; ``ConfigError`` (exit 2) names the
    file when it cannot be opened.
    """
    try:
        private_dir(path.parent)
        private_file(path)
        for suffix in SIDECARS:
            _tighten(path.with_name(path.name + suffix), 0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot open the database {path} (check [bot] data_dir): "
            f"{exc.strerror or exc}: {exc.filename or path}"
        ) from None
    db = None
    try:
        with reporting(path):
            db = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            db.execute(f"PRAGMA busy_timeout = {int(max(BUSY_TIMEOUT, busy_timeout) * 1000)}")
            _verify(db, path, verify, tables)  # before anything below may write
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db)
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    except LcbotError:
        if db is not None:
            db.close()
        raise
    except (OSError, sqlite3.Error) as exc:
        if db is not None:
            db.close()
        raise ConfigError(
            f"cannot open the database {path} (check [bot] data_dir): {exc}"
        ) from None
    return db


def file_of(db: sqlite3.Connection) -> Path:
    """The file a connection has open."""
    (_, _, path), *_ = db.execute("PRAGMA database_list").fetchall()
    return Path(path)


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
        if db.in_transaction:  # SQLite may have rolled back already (a damaged page, …)
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
        self.checkpointer: Checkpointer | None = None

    def open(self) -> sqlite3.Connection:
        """The event loop's connection; the whole file is checked first (``Damaged``). Its
        WAL is checkpointed by a thread (``lcbot.db.checkpoint``), not by its commits."""
        self.conn = connect(self.path, busy_timeout=LOOP_BUSY_TIMEOUT, verify=True)
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {LOOP_AUTOCHECKPOINT}")
        self.checkpointer = Checkpointer(self.path)
        self.checkpointer.start()
        return self.conn

    @contextlib.contextmanager
    def worker(self) -> Iterator[sqlite3.Connection]:
        """The worker-thread connection, held for the block (never use it on the event loop:
        it waits up to ``BUSY_TIMEOUT`` for another process's lock)."""
        with self._worker_lock:
            if self._worker is None:
                self._worker = connect(self.path, verify=False)  # open() checked the file
            yield self._worker

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
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
