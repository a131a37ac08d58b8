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
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from lcbot.asyncutil import Waker, background
from lcbot.db import Busy, Database, transaction
from lcbot.db import outbox as sql

log = logging.getLogger("lcbot.outbox")

FLUSH_DELAY = 0.005  # seconds: group-commit window (fewer, larger transactions; ≤ 5 ms latency)
RETRY_POLL = 0.5  # seconds between looks for rows `lcbot outbox retry` marked
MAX_BACKOFF = 0.5  # seconds between commit attempts while the database is locked
VOLATILE_KINDS = ("reply", "notice")  # may be sent before they are stored (lock held)


@dataclass
class Message:
    """One outgoing message. ``recipient`` is a user name or ``room:<id>`` / ``contact:<id>``.

    ``priority``: 0 replies, notices and critical alerts; 1 warnings; 2 info (lower first).
    ``stored``: its row is committed (False only while the database is locked).
    """

    id: int
    recipient: str
    text: str
    kind: str = "reply"
    attempts: int = 0
    created: float = 0.0
    priority: int = 0
    stored: bool = True


def clean_text(text: str) -> str:
    """Text SQLite and WeChat can store: lone surrogates (undecodable bytes) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class Feed:
    """Outbox → drainer: messages ready to send, and the last batch whose marks are stored.

    Written by the outbox's writer task, read by the drainer, both on the event loop.
    """

    def __init__(self) -> None:
        self.ready: deque[Message] = deque()
        self.marks_stored = 0
        self.changed = asyncio.Event()

    def push(self, messages: list[Message], marks_stored: int | None = None) -> None:
        self.ready.extend(messages)
        if marks_stored is not None:
            self.marks_stored = max(self.marks_stored, marks_stored)
        self.changed.set()

    def take(self) -> list[Message]:
        messages = list(self.ready)
        self.ready.clear()
        return messages


class Outbox:
    """Durable queue with batched writes; ``running()`` runs its writer task."""

    def __init__(self, db: Database, feed: Feed, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.feed = feed
        self.clock = clock
        self.waker = Waker()
        self.counts = dict.fromkeys(sql.STATES, 0)  # rows per state, kept in memory
        self.last_sent_at: float | None = None
        self._lock = threading.Lock()
        self._new: list[Message] = []
        self._sent: list[int] = []
        self._failed: list[tuple[int, str, str, int]] = []  # attempts, state, error, id
        self._ops: list[tuple[Callable[..., Any], tuple]] = []
        self._released: set[int] = set()  # handed to the drainer before being stored
        self._batch = 1  # the batch that marks reported now will be committed with
        self._ids = itertools.count(1)
        self._expire_after: int | None = None  # where retention goes on (an id)
        self._retry_at = 0.0  # monotonic time of the next commit attempt while locked
        self._backoff = 0.0

    # --- writing (any thread) -------------------------------------------------------------

    def put(self, recipient: str, text: str, kind: str = "reply", priority: int = 0) -> None:
        """Queue a message. It is stored by the next commit, then sent."""
        text, recipient = clean_text(text), clean_text(recipient)
        with self._lock:
            first = not self._new
            self._new.append(
                Message(next(self._ids), recipient, text, kind, 0, self.clock(), priority)
            )
        if first or self._backoff:  # once per batch; each time while the database is locked
            self.waker.wake()

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

    def mark_failed(self, message: Message, error: str, dead: bool) -> None:
        with self._lock:
            self._failed.append(
                (message.attempts, "dead" if dead else "pending", error, message.id)
            )
        self.waker.wake()

    @property
    def dirty(self) -> bool:
        """Whether writes wait to be committed."""
        return bool(self._new or self._sent or self._failed or self._ops)

    # --- committing (event loop) ----------------------------------------------------------

    def open(self) -> None:
        """Load counts and the rows still pending from earlier runs (they go to the feed)."""
        conn = self.db.conn
        assert conn is not None, "the database is not open"
        with self._lock:  # messages put before the start get ids after the stored ones
            self._ids = itertools.count(sql.next_id(conn))
            for message in self._new:
                message.id = next(self._ids)
        self.counts = sql.counts(conn)
        self.last_sent_at = sql.last_sent_at(conn)
        pending = [Message(*row) for row in sql.pending_rows(conn)]
        if pending:
            log.info("%d message(s) pending from an earlier run", len(pending))
        self.feed.push(pending)

    def flush(self) -> bool:
        """Commit everything queued in one transaction; False if the database is locked
        (nothing is lost: the writes stay queued)."""
        with self._lock:
            new, sent, failed, ops = self._new, self._sent, self._failed, self._ops
            self._new, self._sent, self._failed, self._ops = [], [], [], []
            batch, self._batch = self._batch, self._batch + 1
        if not (new or sent or failed or ops):
            self.feed.push([], batch)
            return True
        conn = self.db.conn
        assert conn is not None, "the database is not open"
        try:
            with transaction(conn):
                self._write(conn, new, sent, failed, ops)
        except Busy:
            self._requeue(new, sent, failed, ops)
            return False
        except Exception as exc:  # a row or a write that cannot be stored: not the others
            name = type(exc).__name__
            log.error("a batch could not be stored (%s: %s); storing it piece by piece", name, exc)
            return self._piecewise(conn, new, sent, failed, ops, batch)
        self._stored(new, sent, failed, batch)
        return True

    def _write(self, conn: sqlite3.Connection, new, sent, failed, ops) -> None:
        sql.insert(conn, new)
        for op, args in ops:
            op(conn, *args)
        # failures first: a message that failed, then was sent, ends up sent
        sql.mark_failed(conn, failed)
        if sent:
            sql.mark_sent(conn, sent, self.clock())

    def _piecewise(self, conn: sqlite3.Connection, new, sent, failed, ops, batch: int) -> bool:
        """Each message, the marks, then each write in its own transaction: what fails is
        logged and dropped; if the lock is lost meanwhile, what is left is queued again."""
        pieces = [(self._write, ([m], [], [], [])) for m in new]
        pieces.append((self._write, ([], sent, failed, [])))
        pieces += [(self._write, ([], [], [], [item])) for item in ops]
        stored: list[Message] = []
        for i, (write, args) in enumerate(pieces):
            try:
                with transaction(conn):
                    write(conn, *args)
            except Busy:
                rest = pieces[i:]
                self._requeue(
                    [m for _, a in rest for m in a[0]],
                    [s for _, a in rest for s in a[1]],
                    [f for _, a in rest for f in a[2]],
                    [o for _, a in rest for o in a[3]],
                )
                self._stored(stored, [], [], None)
                return False
            except Exception:
                log.exception("dropped a message or write that cannot be stored")
                continue
            stored += args[0]
        self._stored(stored, sent, failed, batch)
        return True

    def _requeue(self, new, sent, failed, ops) -> None:
        with self._lock:  # in front of what came meanwhile: nothing is dropped or reordered
            self._new[:0], self._sent[:0], self._failed[:0], self._ops[:0] = new, sent, failed, ops

    def _stored(self, new: list[Message], sent: list[int], failed: list, batch: int | None) -> None:
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
            self.feed.push([Message(id_, r, t, k, 0, c, p) for id_, r, t, k, _, c, p in rows])

    def expire(self, before: float, limit: int) -> tuple[int, bool]:
        """Delete sent and dead rows created before ``before``, looking at ``limit`` rows;
        returns (rows deleted, whether more may be left). Nothing happens while locked."""
        conn = self.db.conn
        assert conn is not None
        try:
            with transaction(conn):
                gone, self._expire_after = sql.delete_old(
                    conn, before, limit, self._expire_after or 0
                )
        except Busy:
            return 0, False
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
                await asyncio.sleep(FLUSH_DELAY)  # let a burst of puts join this batch
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
