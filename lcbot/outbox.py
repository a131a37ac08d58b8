"""The outbox: every outgoing message is a row in SQLite before it is sent (the seed's MsgBuff).

``put()`` is cheap and safe from any thread: it appends to an in-memory batch. The
``flush()`` step commits the batch in one transaction (WAL mode), together with the
sent/failed marks reported by the drainer, and only then hands the new rows to the
drainer, so nothing is sent that is not on disk. Rows still ``pending`` when the process
dies are loaded again by the next ``open()``; a row is marked ``sent`` only after the
transport confirmed it, so delivery is at-least-once.

Rows are lost only if the process dies in the instant between ``put()`` and the next
commit (typically under a millisecond).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lcbot.store import connect

STATES = ("pending", "sent", "dead", "retry")  # retry: set by `lcbot outbox retry`
COLUMNS = "id, recipient, text, kind, attempts, created, priority"


@dataclass
class Message:
    """One outgoing message. ``recipient`` is a user name or ``room:<id>`` / ``contact:<id>``.

    ``priority``: 0 replies, notices and critical alerts; 1 warnings; 2 info (lower first).
    """

    id: int
    recipient: str
    text: str
    kind: str = "reply"
    attempts: int = 0
    created: float = 0.0
    priority: int = 0


def clean_text(text: str) -> str:
    """Text SQLite and WeChat can store: lone surrogates (undecodable bytes) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class Outbox:
    """Durable queue with batched writes. Call ``flush()`` to commit (the App's flusher does)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self.db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._new: list[Message] = []
        self._sent: list[int] = []
        self._failed: list[tuple[int, str, str, int]] = []  # attempts, state, error, id
        self._deferred: list[tuple[str, tuple]] = []  # extra statements for the next commit
        self._ids = itertools.count(1)
        self.on_put: Callable[[], None] = lambda: None  # the App wakes its flusher here

    def open(self) -> list[Message]:
        """Open the database; returns the rows still pending from earlier runs, oldest first."""
        self.db = connect(self.path)
        (last,) = self.db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()
        self._ids = itertools.count(last + 1)
        self.db.execute("UPDATE outbox SET state = 'pending', attempts = 0 WHERE state = 'retry'")
        rows = self.db.execute(
            f"SELECT {COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY id"
        ).fetchall()
        return [Message(*row) for row in rows]

    def take_retries(self) -> list[Message]:
        """Rows that ``lcbot outbox retry`` marked while the bot runs; they become pending."""
        assert self.db is not None, "outbox is not open"
        rows = self.db.execute(
            f"SELECT {COLUMNS} FROM outbox WHERE state = 'retry' ORDER BY id"
        ).fetchall()
        messages = [Message(id_, r, t, k, 0, c, p) for id_, r, t, k, _, c, p in rows]
        # marked at once (not deferred): the next look must not take them again
        self.db.executemany(
            "UPDATE outbox SET state = 'pending', attempts = 0 WHERE id = ? AND state = 'retry'",
            [(m.id,) for m in messages],
        )
        return messages

    def defer(self, sql: str, params: tuple = ()) -> None:
        """Run ``sql`` in the next flush's transaction (atomic with the rows put before it)."""
        with self._lock:
            self._deferred.append((sql, params))
        self.on_put()

    def close(self) -> None:
        if self.db is not None:
            self.flush()
            self.db.close()
            self.db = None

    def put(self, recipient: str, text: str, kind: str = "reply", priority: int = 0) -> None:
        """Queue a message (any thread). It is stored by the next flush, then sent."""
        text, recipient = clean_text(text), clean_text(recipient)
        with self._lock:
            first = not self._new
            message = Message(next(self._ids), recipient, text, kind, 0, self.clock(), priority)
            self._new.append(message)
        if first:  # one wake-up per batch is enough
            self.on_put()

    def mark_sent(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._sent.extend(ids)

    def mark_failed(self, message: Message, error: str, dead: bool) -> None:
        with self._lock:
            self._failed.append(
                (message.attempts, "dead" if dead else "pending", error, message.id)
            )

    @property
    def dirty(self) -> bool:
        return bool(self._new or self._sent or self._failed or self._deferred)

    def flush(self) -> list[Message]:
        """Commit queued writes in one transaction; returns the newly stored messages."""
        with self._lock:
            new, self._new = self._new, []
            sent, self._sent = self._sent, []
            failed, self._failed = self._failed, []
            deferred, self._deferred = self._deferred, []
        if not (new or sent or failed or deferred):
            return []
        assert self.db is not None, "outbox is not open"
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT INTO outbox (id, recipient, text, kind, created, priority) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(m.id, m.recipient, m.text, m.kind, m.created, m.priority) for m in new],
            )
            for sql, params in deferred:
                db.execute(sql, params)
            # failures first: a message that failed, then was sent, ends up sent
            db.executemany(
                "UPDATE outbox SET attempts = ?, state = ?, last_error = ? WHERE id = ?", failed
            )
            if sent:  # one statement for the whole batch
                db.execute(
                    "UPDATE outbox SET state = 'sent', sent_at = ? "
                    "WHERE id IN (SELECT value FROM json_each(?))",
                    (self.clock(), json.dumps(sent)),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            with self._lock:  # keep them for the next try: nothing is dropped
                self._new[:0], self._sent[:0], self._failed[:0] = new, sent, failed
                self._deferred[:0] = deferred
            raise
        return new
