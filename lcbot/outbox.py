"""The outbox: every outgoing message is a row in SQLite before it is sent (the seed's MsgBuff).

``put()`` is cheap and safe from any thread: it appends to an in-memory batch. The
outbox's writer task commits the batch in one transaction, together with the drainer's
sent/failed marks and the other components' writes (``record``), and only then hands the
new rows to the drainer through the ``Feed``: nothing is sent that is not on disk. Rows
still ``pending`` when the process dies are loaded again at the next start; a row is
marked ``sent`` only after the transport confirmed it, so delivery is at-least-once.

If another process holds the database's write lock, the writer never blocks the event
loop for more than ``LOOP_BUSY_TIMEOUT``: it retries with backoff, and replies and notices
(answers to someone waiting) are handed to the drainer at once, to be stored when the
lock is free. Alerts wait for the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from lcbot.asyncutil import Waker, background
from lcbot.db import Busy, Database, transaction
from lcbot.db import outbox as sql
from lcbot.files import FileStore
from lcbot.message import Feed, Message, Writes
from lcbot.text import clean_text, truncate

log = logging.getLogger("lcbot.outbox")

RETRY_POLL = 0.5  # seconds between looks for rows `lcbot outbox retry` marked
MAX_BACKOFF = 0.5  # seconds between commit attempts while the database is locked
VOLATILE_KINDS = ("reply", "notice")  # may be sent before they are stored (lock held)


class Outbox:
    """Durable queue with batched writes; ``running()`` runs its writer task."""

    def __init__(
        self,
        db: Database,
        feed: Feed,
        clock: Callable[[], float] = time.time,
        max_text: int | None = None,
        files: FileStore | None = None,
    ) -> None:
        self.db = db
        self.files = files  # where file messages wait (None: no files)
        self.feed = feed
        self.clock = clock
        self.max_text = max_text  # longer texts are cut with a marker when they are put
        self.waker = Waker()
        self.counts = dict.fromkeys(sql.STATES, 0)  # rows per state, kept in memory
        self.last_sent_at: float | None = None
        self._lock = threading.Lock()
        self._new: list[Message] = []
        self._sent: list[int] = []
        self._failed: list[tuple[int, str, str, int]] = []  # attempts, state, error, id
        self._parts: list[tuple[int, int]] = []  # parts_sent, id
        self._ops: list[tuple[Callable[..., Any], tuple]] = []
        self._released: set[int] = set()  # handed to the drainer before being stored
        self._batch = 1  # the batch that marks reported now will be committed with
        self._ids = itertools.count(1)
        self._expire_after: int | None = None  # where retention goes on (an id)
        self._retry_at = 0.0  # monotonic time of the next commit attempt while locked
        self._backoff = 0.0

    # --- writing (any thread) -------------------------------------------------------------

    def put(
        self, recipient: str, text: str, kind: str = "reply", priority: int = 0, **file: Any
    ) -> None:
        """Queue a message. It is stored by the next commit, then sent. (``file`` and
        ``file_size``: a file message, see ``put_file``.)"""
        if not text.isascii():  # ASCII is always storable (isascii costs nothing)
            text = clean_text(text)
        if not recipient.isascii():
            recipient = clean_text(recipient)
        if self.max_text is not None and len(text) > self.max_text:
            text = truncate(text, self.max_text)
        with self._lock:
            first = not self._new
            self._new.append(
                Message(next(self._ids), recipient, text, kind, 0, self.clock(), priority, **file)
            )
        if first or self._backoff:  # once per batch; each time while the database is locked
            self.waker.wake()

    def put_file(
        self, recipient: str, source: Any, name: str | None = None, kind: str = "reply"
    ) -> None:
        """Save ``source`` (a path or bytes) in the file store, durably, then queue it like a
        message. ``FileTooLarge`` above ``[files] max_size``."""
        if self.files is None:
            raise RuntimeError("this outbox has no file store")
        saved = self.files.save(source, name)
        self.put(recipient, saved.name, kind, file=saved.key, file_size=saved.size)

    def record(self, op: Callable[..., Any], *args: Any) -> None:
        """Run ``op(connection, *args)`` (a function of ``lcbot.db``) in the next commit,
        atomically with the messages put before it."""
        with self._lock:
            self._ops.append((op, args))
        self.waker.wake()

    def mark_sent(self, ids: list[int]) -> int:
        """Record deliveries; returns the batch they are stored with (see ``Feed``)."""
        with self._lock:
            self._sent.extend(ids)
            batch = self._batch
        self.last_sent_at = self.clock()
        self.waker.wake()
        return batch

    def mark_failed(self, message: Message, error: str, dead: bool) -> int:
        """Record a failed send; returns the batch it is stored with."""
        with self._lock:
            self._failed.append(
                (message.attempts, "dead" if dead else "pending", error, message.id)
            )
            batch = self._batch
        self.waker.wake()
        return batch

    def mark_part(self, message: Message) -> int:
        """Record that ``message.parts_sent`` parts went out; returns the batch."""
        with self._lock:
            self._parts.append((message.parts_sent, message.id))
            batch = self._batch
        self.waker.wake()
        return batch

    @property
    def pending(self) -> int:
        """Rows pending once the writes queued now are stored."""
        with self._lock:
            dead = sum(1 for row in self._failed if row[1] == "dead")
            return max(0, self.counts["pending"] + len(self._new) - len(self._sent) - dead)

    @property
    def dirty(self) -> bool:
        """Whether writes wait to be committed."""
        return bool(self._new or self._sent or self._failed or self._parts or self._ops)

    # --- committing (event loop) ----------------------------------------------------------

    def open(self) -> None:
        """Load counts; tell the drainer who has messages pending from earlier runs (it reads
        them in windows)."""
        conn = self.db.conn
        assert conn is not None, "the database is not open"
        with self._lock:  # messages put before the start get ids after the stored ones
            self._ids = itertools.count(sql.next_id(conn))
            for message in self._new:
                message.id = next(self._ids)
        self.counts = sql.counts(conn)
        if self.files is not None:  # files of sent rows, or of rows a crash lost
            with self._lock:
                keep = sql.open_files(conn) | {m.file for m in self._new if m.file}
            if swept := self.files.sweep(keep):
                log.info("removed %d file(s) no pending message needs", swept)
        self.last_sent_at = sql.last_sent_at(conn)
        if self.counts["pending"]:
            log.info("%d message(s) pending from an earlier run", self.counts["pending"])
        self.feed.backlog += sql.pending_recipients(conn)
        self.feed.changed.set()

    def pending_for(self, recipient: str, after: tuple[int, int] | None, limit: int) -> list:
        """The next stored pending messages of ``recipient`` (the drainer's backlog)."""
        conn = self.db.conn
        assert conn is not None
        return [Message(*row) for row in sql.pending_for(conn, recipient, after, limit)]

    def pending_after(self, recipient: str, after: tuple[int, int] | None) -> int:
        """How many stored pending messages of ``recipient`` sort after ``after``."""
        conn = self.db.conn
        assert conn is not None
        return sql.pending_after(conn, recipient, after)

    def _take(self) -> Writes:
        with self._lock:
            writes = Writes(self._new, self._sent, self._failed, self._parts, self._ops)
            self._new, self._sent, self._failed, self._parts, self._ops = [], [], [], [], []
        return writes

    def flush(self) -> bool:
        """Commit everything queued in one transaction; False if the database is locked
        (nothing is lost: the writes stay queued)."""
        with self._lock:
            batch, self._batch = self._batch, self._batch + 1
        writes = self._take()
        if not writes:
            self.feed.push([], batch)
            return True
        conn = self.db.conn
        assert conn is not None, "the database is not open"
        try:
            with transaction(conn):
                writes.write(conn, self.clock())
        except Busy:
            self._requeue(writes)
            return False
        except Exception as exc:  # a row or a write that cannot be stored: not the others
            name = type(exc).__name__
            log.error("a batch could not be stored (%s: %s); storing it piece by piece", name, exc)
            return self._piecewise(conn, writes, batch)
        self._stored(writes, batch)
        return True

    def _piecewise(self, conn: sqlite3.Connection, writes: Writes, batch: int) -> bool:
        """Each message, the marks, then each write in its own transaction: what fails is
        logged and dropped; if the lock is lost meanwhile, what is left is queued again."""
        pieces = writes.pieces()
        done = Writes()
        for i, piece in enumerate(pieces):
            try:
                with transaction(conn):
                    piece.write(conn, self.clock())
            except Busy:
                self._requeue(Writes.joined(pieces[i:]))
                self._stored(done, None)
                return False
            except Exception:
                log.exception("dropped a message or write that cannot be stored")
                continue
            done = Writes.joined([done, piece])
        self._stored(done, batch)
        return True

    def _requeue(self, writes: Writes) -> None:
        with self._lock:  # in front of what came meanwhile: nothing is dropped or reordered
            self._new[:0], self._sent[:0], self._failed[:0] = writes.new, writes.sent, writes.failed
            self._parts[:0], self._ops[:0] = writes.parts, writes.ops

    def _stored(self, writes: Writes, batch: int | None) -> None:
        new, sent, failed = writes.new, writes.sent, writes.failed
        dead = sum(1 for row in failed if row[1] == "dead")
        counts = self.counts
        counts["pending"] += len(new) - len(sent) - dead
        counts["sent"] += len(sent)
        counts["dead"] += dead
        fresh = new
        if self._released:  # some went to the drainer before they were stored
            fresh = []
            for message in new:
                message.stored = True
                if message.id in self._released:
                    self._released.discard(message.id)
                else:
                    fresh.append(message)
        self.feed.push(fresh, batch)

    def _release_volatile(self) -> None:
        """While the database is locked, replies and notices go to the drainer unstored."""
        with self._lock:
            volatile = [
                m for m in self._new if m.kind in VOLATILE_KINDS and m.id not in self._released
            ]
        for message in volatile:
            message.stored = False
            self._released.add(message.id)
        if volatile:
            self.feed.push(volatile)

    def _take_retries(self) -> None:
        conn = self.db.conn
        assert conn is not None
        try:
            if not sql.has_retries(conn):  # the usual case: no write lock taken
                return
            with transaction(conn):
                rows = sql.take_retries(conn)
        except Exception as exc:  # locked, or a read error: the next look tries again
            log.debug("could not look for retried messages: %s", exc)
            return
        if rows:
            counts = self.counts
            counts["pending"] += len(rows)
            from_retry = min(len(rows), counts["retry"])  # marked while the bot was stopped
            counts["retry"] -= from_retry
            counts["dead"] = max(0, counts["dead"] - (len(rows) - from_retry))
            messages = [Message(*row) for row in rows]
            for message in messages:
                message.attempts = 0  # a fresh set of attempts
            self.feed.push(messages)

    def expire(self, before: float, limit: int) -> tuple[int, bool]:
        """Delete sent and dead rows created before ``before``, looking at ``limit`` rows;
        returns (rows deleted, whether more may be left). Nothing happens while locked."""
        conn = self.db.conn
        assert conn is not None
        files: list[str] = []
        try:
            with transaction(conn):
                gone, self._expire_after = sql.delete_old(
                    conn, before, limit, self._expire_after or 0, files
                )
        except Busy:
            return 0, False
        for key in files if self.files is not None else ():  # a dead file message's bytes
            self.files.remove(key)
        for state, count in gone.items():
            self.counts[state] = max(0, self.counts[state] - count)
        return sum(gone.values()), self._expire_after is not None

    async def run(self) -> None:
        """The writer task: commit batches as they come; pick up CLI retries."""
        loop = asyncio.get_running_loop()
        poll_at = loop.time()  # rows marked for retry while the bot was stopped: now
        while True:
            now = loop.time()
            wait = poll_at - now
            if self.dirty:
                wait = min(wait, max(self._retry_at - now, 0.0))
            await self.waker.wait(max(wait, 0.0))
            if loop.time() >= poll_at:
                self._take_retries()
                poll_at = loop.time() + RETRY_POLL
            if not self.dirty:
                continue
            if loop.time() < self._retry_at:  # locked a moment ago: do not block again yet
                self._release_volatile()
                continue
            if not self._backoff:
                # group commit: everything put during this loop turn (a burst of messages
                # handled together, a send round's marks) joins one transaction; a lone
                # reply is stored at once instead of waiting out a fixed window
                await asyncio.sleep(0)
            self._commit(loop)

    def _commit(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            stored = self.flush()
        except Exception:  # the writer never dies: it retries, with backoff
            log.exception("could not write the outbox; retrying")
            stored = False
        if stored:
            if self._backoff:
                log.warning("the database is writable again")
            self._backoff = self._retry_at = 0.0
            return
        if not self._backoff:
            log.warning(
                "the database is locked by another process; retrying (replies go out unstored)"
            )
        self._backoff = min(max(self._backoff * 2, 0.03), MAX_BACKOFF)
        self._retry_at = loop.time() + self._backoff
        self._release_volatile()

    def close(self, attempts: int = 10) -> None:
        """Final commit (no event loop: tests, tools)."""
        for _ in range(attempts):
            if self._final_flush():
                return
            time.sleep(0.2)
        self._lost()

    async def aclose(self, attempts: int = 10) -> None:
        """Final commit at stop: waits (without blocking the loop) up to about two seconds
        for a locked database."""
        for _ in range(attempts):
            if self._final_flush():
                return
            await asyncio.sleep(0.2)
        self._lost()

    def _final_flush(self) -> bool:
        try:
            return self.flush()
        except Exception:
            log.exception("could not write the outbox")
            return False

    def _lost(self) -> None:
        log.error("the database stayed locked: %d message(s) not stored", len(self._new))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        """Open, run the writer task; at the end, commit what is left."""
        self.waker.bind()
        self.open()
        try:
            async with background(self.run(), "lcbot-outbox") as task:
                yield task
        finally:
            await self.aclose()
