"""WAL checkpoints in a thread of their own, so no commit on the event loop does one.

SQLite appends commits to ``lcbot.db-wal``; a checkpoint copies them into ``lcbot.db``
and syncs it. By default the commit that takes the WAL past 1,000 pages does that work
itself: on the event loop, that was a commit of several milliseconds of disk writes and
syncs (and, with busy threads in the process, of waiting for the GIL after each of them).
The running bot's loop connection checkpoints only past ``LOOP_AUTOCHECKPOINT`` pages (a
safety net), and ``Checkpointer`` runs a ``PASSIVE`` checkpoint (which never waits for
or blocks a writer) every ``EVERY`` seconds from a connection of its own.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("lcbot.db")

EVERY = 1.0  # seconds between checkpoints
LOOP_AUTOCHECKPOINT = 16_000  # pages (~64 MiB): the loop connection checkpoints past this


class Checkpointer:
    """``start()`` … ``stop()``: a daemon thread checkpointing ``path``'s WAL."""

    def __init__(self, path: Path, every: float = EVERY) -> None:
        self.path = path
        self.every = every
        self.last: tuple[int, int, int] | None = None  # (busy, WAL frames, checkpointed)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lcbot-checkpoint", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Checkpoint now rather than at the next tick."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.is_set():
                self._wake.wait(self.every)
                self._wake.clear()
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            self.last = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # the loop's safety net still checkpoints
            log.debug("WAL checkpoint failed: %s", exc)
