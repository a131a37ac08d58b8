"""Metrics: numbers over time from jobs and plugins, kept in the bot's database for ``plot``.

A point belongs to a *series*, ``(source, name)``: ``source`` is a job's name, a plugin's
name, or ``"host"`` for the host figures the sysmon example records. ``record`` is cheap and
safe from any thread (the event loop included): it never touches the database; stored
points join the outbox writer's next commit (``Outbox.record``).

**What a flood can store.** Per series, time is cut into slots of ``RESOLUTION`` seconds
and only the last point of each slot is stored, once the slot is over (a background tick,
and at stop): at most 6 points per series per minute, however fast a job reports, and the
latest value is never lost. A point older than its series' current slot is dropped (a
series only moves forward), one from the future counts as now, one older than ``[storage]
keep`` is dropped. At most ``MAX_SERIES`` series take points at a time; one idle for
``IDLE`` seconds makes room. Retention deletes points older than ``[storage] keep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import numbers
import operator
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from lcbot.asyncutil import background
from lcbot.db import Database
from lcbot.db import metrics as sql
from lcbot.db.batches import Expiry
from lcbot.text import quote

log = logging.getLogger("lcbot.metrics")

RESOLUTION = 10.0  # seconds: one stored point per series per slot of this length
MAX_SERIES = 100  # series taking points at a time
IDLE = 3600.0  # seconds without a point after which a series leaves memory
RECENT = 256  # stored points per series also kept in memory (read before they are committed)
TICK = 1.0  # seconds between looks for slots that are over
MAX_NAME = 64
HOST = "host"  # the source of the host's own figures

Point = sql.Point


def check_name(text: Any, what: str) -> str:
    """A source or metric name: 1-64 characters, no spaces (``plot`` takes them as words)."""
    if (
        isinstance(text, str)
        and 0 < len(text) <= MAX_NAME
        and not any(c.isspace() for c in text)
        and text.isprintable()
    ):
        return text
    shown = quote(text) if isinstance(text, str) else type(text).__name__
    raise ValueError(f"a metric {what} is 1-{MAX_NAME} characters without spaces, not '{shown}'")


class _Series:
    __slots__ = ("open", "recent", "seen", "slot")

    def __init__(self) -> None:
        self.slot = -math.inf  # the current slot (at // RESOLUTION)
        self.open: Point | None = None  # the slot's latest point, stored when the slot is over
        self.recent: deque[Point] = deque(maxlen=RECENT)
        self.seen = 0.0


class Metrics:
    """Records points (any thread), reads series (blocking: worker threads), expires them."""

    def __init__(
        self,
        db: Database,
        record: Callable[..., None],
        keep: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._record = record  # Outbox.record: joins the writer's next commit
        self.keep = keep
        self.clock = clock
        self._series: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()
        self._expiry = Expiry(sql.delete_old)
        self._refused_at = -math.inf  # when a refused series was last logged
        self.dropped = 0  # points not stored (late, too old, not finite, too many series)

    # --- recording (any thread) -----------------------------------------------------------

    def record(
        self,
        source: str,
        name: str,
        value: float,
        step: int | None = None,
        at: float | None = None,
    ) -> None:
        """Record ``value`` of ``source``'s metric ``name`` (``at``: epoch seconds, default
        now). ``ValueError`` for a bad name, value or step; a NaN or infinite value is not
        stored."""
        key = (check_name(source, "source"), check_name(name, "name"))
        if not isinstance(value, numbers.Real):
            raise ValueError(f"a metric value is a number, not {type(value).__name__}")
        if step is not None:
            try:
                step = operator.index(step)
            except TypeError:
                raise ValueError(f"a metric step is a whole number, not {step!r}") from None
        now = self.clock()
        value, at = float(value), now if at is None else min(float(at), now)
        if not (math.isfinite(value) and at >= now - self.keep):  # NaN compares False
            self.dropped += 1
            return
        slot = at // RESOLUTION
        with self._lock:
            series = self._series.get(key)
            if series is None:
                if len(self._series) >= MAX_SERIES:
                    self._refuse(key, now)
                    return
                series = self._series[key] = _Series()
            if slot < series.slot:  # late: its slot is over
                self.dropped += 1
                return
            if slot > series.slot and series.open is not None:
                self._store(key, series)
            series.slot, series.open, series.seen = slot, (at, step, value), now

    def _store(self, key: tuple[str, str], series: _Series) -> None:
        point, series.open = series.open, None
        assert point is not None
        series.recent.append(point)
        self._record(sql.insert, *key, *point)

    def _refuse(self, key: tuple[str, str], now: float) -> None:
        self.dropped += 1
        if now - self._refused_at >= 60:  # once a minute at most
            self._refused_at = now
            log.warning(
                "metric %s %s not recorded: %d series take points already (at most %d)",
                *key,
                len(self._series),
                MAX_SERIES,
            )

    def tick(self, now: float | None = None) -> None:
        """Store the points of slots that are over; forget series idle for ``IDLE``."""
        now = self.clock() if now is None else now
        slot = now // RESOLUTION
        with self._lock:
            for key, series in list(self._series.items()):
                if series.open is not None and series.slot < slot:
                    self._store(key, series)
                elif series.open is None and now - series.seen >= IDLE:
                    del self._series[key]

    def close(self) -> None:
        """Store every point still held (at stop, before the writer's last commit)."""
        with self._lock:
            for key, series in self._series.items():
                if series.open is not None:
                    self._store(key, series)

    # --- reading (blocking: worker threads) -----------------------------------------------

    def series(self, source: str, name: str, since: float) -> list[Point]:
        """``(at, step, value)`` of every point from ``since`` on, oldest first — those not
        committed yet and the current slot's latest included."""
        with self._db.worker() as conn:
            stored = sql.series(conn, source, name, since)
        with self._lock:
            series = self._series.get((source, name))
            held = [*series.recent, series.open] if series is not None else []
        points = dict.fromkeys(stored)
        points.update(dict.fromkeys(p for p in held if p is not None and p[0] >= since))
        return sorted(points, key=lambda p: p[0])

    def names(self, source: str) -> list[str]:
        """The metric names known for ``source``, sorted."""
        with self._db.worker() as conn:
            stored = sql.names(conn, source)
        with self._lock:
            held = [name for (s, name) in self._series if s == source]
        return sorted({*stored, *held})

    def sources(self) -> list[str]:
        """Every source with metrics, sorted."""
        with self._db.worker() as conn:
            stored = sql.sources(conn)
        with self._lock:
            held = [source for (source, _) in self._series]
        return sorted({*stored, *held})

    # --- retention and running (event loop) -----------------------------------------------

    def expire(self, now: float, limit: int) -> tuple[int, bool]:
        """Delete points older than ``keep`` (looking at ``limit``); (deleted, more left)."""
        return self._expiry.step(self._db.conn, now - self.keep, limit)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.tick()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        """The tick task; at the end, every held point is handed to the writer."""
        try:
            async with background(self._run(), "lcbot-metrics") as task:
                yield task
        finally:
            self.close()


class MetricsView:
    """``bot.metrics``: reading the recorded series (blocking: from plain ``def`` handlers)."""

    __slots__ = ("_metrics",)

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def series(self, source: str, name: str, since: float) -> list[Point]:
        """``(at, step, value)`` points of ``source``'s ``name`` from epoch ``since`` on."""
        return self._metrics.series(source, name, since)

    def names(self, source: str) -> list[str]:
        """The metric names of ``source``."""
        return self._metrics.names(source)

    def sources(self) -> list[str]:
        """Every source with metrics (jobs, plugins, ``host``)."""
        return self._metrics.sources()
