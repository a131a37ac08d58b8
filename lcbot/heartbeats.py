"""Heartbeats (dead-man's switches): a job that stops beating raises an alert.

A heartbeat is created by its first beat, which gives its period (``every``), its
``grace`` and its alert ``level``; it is late once ``every + grace`` has passed since its
last beat. Beats come from ``lcbot heartbeat KEY --every 1h`` (cron), ``POST
/heartbeat/KEY`` and, in-process, ``Heartbeats.beat`` (the job hub, ``bot.heartbeats``).

``Heartbeats`` runs on the event loop. It loads every heartbeat from the database at
start (so a restart keeps their deadlines and whether their alert went out), takes the
beats of other processes by polling the table (``POLL``, like the router's look for
stored alerts; at once when woken), and raises through the alert router: one alert
``KEY: no heartbeat for 1h12m (expected every 1h)`` when a heartbeat goes late, and a
resolve ``KEY: heartbeat back after 1h20m`` at its next beat (alert key ``heartbeat:KEY``,
so silences and de-duplication work as for any alert). Its own writes go through the
outbox writer (``record``): nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable

from lcbot.alerts import Alert, make_alert
from lcbot.asyncutil import Waker, background, poll_loop
from lcbot.beats import (
    KEY_PREFIX,
    Heartbeat,
    back_text,
    check_beat,
    from_row,
    late_text,
    removed_text,
)
from lcbot.db import Database, transaction
from lcbot.db import heartbeats as sql

log = logging.getLogger("lcbot.heartbeats")

POLL = 0.5  # seconds between looks for beats of other processes (the router's pace)


class Heartbeats:
    """The running bot's heartbeats. ``beat``, ``remove`` and ``listing`` are safe from
    any thread and never block the event loop (a short lock; writes go to the writer);
    ``store`` is for worker threads."""

    def __init__(
        self,
        db: Database,
        record: Callable[..., None],
        submit: Callable[[Alert], Alert],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.record = record  # run a lcbot.db function in the writer's next commit
        self.submit = submit  # hand an alert to the router
        self.clock = clock
        self.waker = Waker()  # set by whoever stored a beat in this process
        self.items: dict[str, Heartbeat] = {}
        self.seen = 0  # the highest seq taken from the table
        self._lock = threading.RLock()  # ``items``; alerts are raised under it, in order

    # --- beats ------------------------------------------------------------------------

    def beat(
        self,
        key: str,
        every: float,
        grace: float = 0.0,
        source: str = "job",
        level: str = "warning",
    ) -> None:
        """Record a beat of ``key`` now (created by its first beat; ``every`` and ``grace``
        in seconds). A late heartbeat is resolved at once. ``InvalidBeat`` (a
        ``ValueError``) names a bad field.
        Safe from any thread; it never blocks (the row is stored by the writer)."""
        key, every, grace, level = check_beat(key, every, grace, level)
        with self._lock:
            now = self.clock()
            self._take(Heartbeat(key, every, grace, level, source, now), fresh=False)
            self.record(sql.beat, key, every, grace, level, source, now)

    def store(self, key: str, every: float, grace: float, level: str, source: str) -> float:
        """Store a beat from a worker thread (the HTTP listener: blocking, the worker
        connection) and wake the watch; returns when the heartbeat is due next."""
        key, every, grace, level = check_beat(key, every, grace, level)
        now = self.clock()
        with self.db.worker() as conn, transaction(conn):
            sql.beat(conn, key, every, grace, level, source, now)
        self.waker.wake()
        return now + every + grace

    def remove(self, key: str) -> bool:
        """Forget heartbeat ``key``; False if there is none. A late one's alert is
        resolved."""
        with self._lock:
            gone = self.items.pop(key, None)
            if gone is None:
                return False
            if gone.late is not None:
                self._raise(gone, removed_text(key), resolved=True)
            self.record(sql.delete, key)
            return True

    def listing(self) -> list[Heartbeat]:
        """Copies of the heartbeats, by key."""
        with self._lock:
            return [dataclasses.replace(b) for _, b in sorted(self.items.items())]

    def _take(self, beat: Heartbeat, fresh: bool) -> None:
        """Apply a beat (``fresh``: read from the table, carrying its ``late`` mark); the
        caller holds the lock."""
        old = self.items.get(beat.key)
        if old is not None and beat.last_beat < old.last_beat:
            return  # memory is newer: this process beat it since
        late = beat.late if old is None and fresh else old.late if old else None
        self.items[beat.key] = beat
        beat.late = late
        if late is not None and beat.last_beat > late:
            beat.late = None
            alerted = old or beat  # the resolve reaches whom the alert reached (its level)
            self._raise(alerted, back_text(beat.key, beat.last_beat - late), resolved=True)
            self.record(sql.mark_late, beat.key, None)

    def _forget(self, beat: Heartbeat, seq: int) -> None:
        """A tombstone from the table (``lcbot heartbeat KEY --remove``)."""
        old = self.items.get(beat.key)
        if old is not None and old.last_beat > beat.last_beat:
            return  # beaten in this process since: its stored beat revives the row
        if old is not None:
            self.remove(beat.key)
        elif beat.late is not None:  # removed while the bot was stopped, late
            self._raise(beat, removed_text(beat.key), resolved=True)
        self.record(sql.forget, beat.key, seq)

    # --- deadlines --------------------------------------------------------------------

    def check(self) -> int:
        """Raise the alert of each heartbeat that has just gone late; returns how many."""
        with self._lock:  # alerts are submitted under it: a resolve never overtakes its alert
            now = self.clock()
            late = [b for b in self.items.values() if b.late is None and b.is_late(now)]
            for beat in late:
                beat.late = beat.last_beat
                self._raise(beat, late_text(beat, now))
                self.record(sql.mark_late, beat.key, beat.last_beat)
        return len(late)

    def _raise(self, beat: Heartbeat, text: str, resolved: bool = False) -> None:
        alert = make_alert(
            text, beat.level, key=KEY_PREFIX + beat.key, resolved=resolved, source="heartbeat"
        )
        self.submit(alert)

    # --- the table --------------------------------------------------------------------

    def poll(self) -> int:
        """Take the rows beaten or removed since the last look; returns how many."""
        conn = self.db.conn
        assert conn is not None, "the database is not open"
        rows = sql.changed(conn, self.seen)
        with self._lock:
            for row in rows:
                beat, removed, seq = from_row(row)
                self.seen = max(self.seen, seq)
                if removed:
                    self._forget(beat, seq)
                else:
                    self._take(beat, fresh=True)
        return len(rows)

    def round(self) -> None:
        """Take new beats, then raise the alerts of those gone late."""
        self.poll()
        self.check()

    async def run(self) -> None:
        await poll_loop(self.waker, POLL, self.round, log, "check heartbeats")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        """Watch the heartbeats while the bot runs (loaded now: late ones alert at once)."""
        self.waker.bind()
        self.round()
        async with background(self.run(), "lcbot-heartbeats") as task:
            yield task
