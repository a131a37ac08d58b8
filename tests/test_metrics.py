"""Metrics on real bots (real SQLite file, the outbox writer's commits): what is stored,
what a flood can store, reading before the commit, restarts, retention, the query plans."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import subprocess
import sys
import time

import pytest

from lcbot import metrics as metrics_mod
from lcbot.metrics import IDLE, MAX_SERIES, RESOLUTION, check_name
from lcbot.testing import running_bot

TABLE_SCAN = re.compile(r"^SCAN metric_points\b(?! USING)")
T0 = 1_700_000_000.0  # a slot boundary (a multiple of RESOLUTION)


def run(coro):
    return asyncio.run(coro)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(bot, sql: str, *params) -> list[tuple]:
    """Rows of ``sql`` on the bot's database file (a separate connection)."""
    db = sqlite3.connect(bot.app.db.path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def stored(bot, source: str = "job", name: str = "loss") -> list[tuple]:
    return rows(
        bot,
        "SELECT at, step, value FROM metric_points JOIN metric_series s ON s.id = series"
        " WHERE source = ? AND name = ? ORDER BY at",
        source,
        name,
    )


def series_rows(bot) -> list[tuple]:
    return rows(bot, "SELECT source, name FROM metric_series ORDER BY id")


@contextlib.asynccontextmanager
async def clocked(tmp_path, clock: Clock):
    """A running bot and its metrics, which (the tick task too) tell time by ``clock``."""
    async with running_bot(tmp_path) as bot:
        bot.app.metrics.clock = clock
        yield bot, bot.app.metrics


def test_a_point_is_stored_once_its_slot_is_over_and_read_back(tmp_path):
    async def go():
        clock = Clock(T0 + 3)
        async with clocked(tmp_path, clock) as (bot, m):
            m.record("job", "loss", 0.5, step=10)
            m.record("job", "loss", 0.4, step=11)  # same slot: replaces the point held
            # read at once: the slot's latest point, though nothing is stored yet
            assert m.series("job", "loss", T0) == [(T0 + 3, 11, 0.4)]
            await bot.settle()
            assert stored(bot) == []
            clock.now = T0 + RESOLUTION + 1
            m.tick()
            await bot.settle()
            assert stored(bot) == [(T0 + 3, 11, 0.4)]
            assert m.series("job", "loss", T0) == [(T0 + 3, 11, 0.4)]  # once, not twice
            assert m.series("job", "loss", T0 + 4) == []
            assert m.names("job") == ["loss"] and m.sources() == ["job"]

    run(go())


def test_a_flood_stores_one_point_per_slot_the_last(tmp_path):
    async def go():
        clock = Clock(T0)
        async with clocked(tmp_path, clock) as (bot, m):
            for i in range(6000):  # 100 points a second for a minute
                clock.now = T0 + i / 100
                m.record("job", "loss", float(i), step=i)
            clock.now = T0 + 60 + RESOLUTION
            m.tick()
            await bot.settle()
            points = stored(bot)
            assert len(points) == 60 / RESOLUTION  # 6 a minute
            per_slot = int(100 * RESOLUTION)
            assert [p[1] for p in points] == [per_slot * (k + 1) - 1 for k in range(6)]
            assert m.dropped == 0

    run(go())


def test_late_old_future_and_not_finite_points(tmp_path):
    async def go():
        clock = Clock(T0 + 100)
        async with clocked(tmp_path, clock) as (bot, m):
            m.record("job", "loss", 1.0, at=T0 + 50)
            m.record("job", "loss", 2.0, at=T0 + 20)  # an earlier slot: dropped
            m.record("job", "loss", 3.0, at=T0 + 10_000)  # the future counts as now
            m.record("job", "loss", float("nan"))
            m.record("job", "loss", float("inf"))
            m.record("job", "old", 1.0, at=T0 + 100 - m.keep - 1)  # older than [storage] keep
            assert m.dropped == 4
            clock.now = T0 + 200
            m.tick()
            await bot.settle()
            assert stored(bot) == [(T0 + 50, None, 1.0), (T0 + 100, None, 3.0)]
            assert m.names("job") == ["loss"]

    run(go())


@pytest.mark.parametrize(
    "args, message",
    [
        (("a b", "loss", 1.0), "a metric source is 1-64 characters without spaces, not 'a b'"),
        (("job", "", 1.0), "a metric name is 1-64 characters"),
        (("job", "x" * 65, 1.0), "a metric name is"),
        (("job", 7, 1.0), "not 'int'"),
        (("job", "loss", "0.3"), "a metric value is a number, not str"),
        (("job", "loss", None), "a metric value is a number, not NoneType"),
        (("job", "loss", 1.0, 1.5), "a metric step is a whole number, not 1.5"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(tmp_path, args, message):
    async def go():
        async with running_bot(tmp_path) as bot:
            with pytest.raises(ValueError, match=re.escape(message)):
                bot.app.metrics.record(*args)
            assert bot.app.metrics.sources() == []

    run(go())


def test_check_name_accepts_job_like_names():
    for name in ("crawler", "train/loss", "gpu0.temp", "val-acc", "损失"):
        assert check_name(name, "name") == name


def test_at_most_max_series_take_points_and_idle_ones_make_room(tmp_path, caplog):
    async def go():
        clock = Clock(T0)
        async with clocked(tmp_path, clock) as (bot, m):
            for i in range(MAX_SERIES):
                m.record("job", f"m{i}", 1.0)
            m.record("job", "one-too-many", 1.0)
            m.record("other", "x", 1.0)
            assert m.dropped == 2
            assert "one-too-many" not in m.names("job") and m.sources() == ["job"]
            assert sum("at most 100" in r.message for r in caplog.records) == 1  # logged once
            clock.now = T0 + RESOLUTION
            m.tick()  # slots over: stored
            clock.now = T0 + IDLE
            m.tick()  # idle for an hour: forgotten (their points stay)
            m.record("job", "one-too-many", 2.0)
            assert "one-too-many" in m.names("job")
            await bot.settle()
            assert len(m.names("job")) == MAX_SERIES + 1

    run(go())


def test_held_points_are_stored_at_stop_and_read_after_a_restart(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            bot.app.bot("trainer").metric("loss", 0.25, step=3)
            bot.app.bot("trainer").metric("load", 1.5, source="host")
            again = await bot.restart()
            since = time.time() - 60
            (point,) = again.app.metrics.series("trainer", "loss", since)
            assert point[1:] == (3, 0.25)
            view = again.app.bot("plot").metrics  # what plugins read
            assert [p[2] for p in view.series("host", "load", since)] == [1.5]
            assert view.sources() == ["host", "trainer"]
            assert view.names("host") == ["load"]
            await again.stop()

    run(go())


def test_retention_deletes_old_points_and_empty_series(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            m = bot.app.metrics
            now = time.time()
            old = now - m.keep + 100
            for i in range(30):
                m.record("job", "old", float(i), at=old + i * RESOLUTION)
            m.record("job", "new", 1.0, at=now - 5)
            m.tick(now + RESOLUTION)
            await bot.settle()
            assert len(stored(bot, name="old")) == 30
            deleted, more = m.expire(now + 400, 10)  # batches of 10 rows
            assert (deleted, more) == (10, True)
            while more:
                deleted, more = m.expire(now + 400, 10)
            assert stored(bot, name="old") == [] and len(stored(bot, name="new")) == 1
            assert series_rows(bot) == [("job", "new")]  # the emptied series went too
            # and the App's retention job reaches it: later, the new point goes as well
            assert (await asyncio.to_thread(lambda: m.expire(now + m.keep, 500))) == (1, False)
            assert series_rows(bot) == []

    run(go())


def test_the_metric_queries_use_their_index(tmp_path):
    statements: list[str] = []

    async def go():
        async with running_bot(tmp_path) as bot:
            m = bot.app.metrics
            bot.app.db.conn.set_trace_callback(statements.append)
            with bot.app.db.worker() as conn:
                conn.set_trace_callback(statements.append)
            now = time.time()
            for i in range(50):
                m.record("job", "loss", float(i), at=now - 600 + i * RESOLUTION)
            m.tick(now + RESOLUTION)
            await bot.settle()
            m.series("job", "loss", now - 3600)
            m.names("job")
            m.expire(now + m.keep, 500)
            bot.app.db.conn.set_trace_callback(None)
            with bot.app.db.worker() as conn:
                conn.set_trace_callback(None)
                plans = {
                    s: [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {s}")]
                    for s in dict.fromkeys(statements)
                    if "metric_" in s and re.match(r"\s*(SELECT|DELETE|INSERT)", s)
                }
        assert len(plans) >= 5, list(plans)
        scans = {s: p for s, p in plans.items() if any(map(TABLE_SCAN.match, p))}
        assert not scans, scans

    run(go())


def test_matplotlib_is_not_imported_at_start(tmp_path):
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from lcbot.testing import running_bot\n"
        "async def go():\n"
        f"    async with running_bot(Path({str(tmp_path)!r})) as bot:\n"
        "        await bot.send('alice', 'plot nothing')\n"
        "        print('matplotlib' in sys.modules)\n"
        "asyncio.run(go())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # no data: nothing drawn, nothing imported


def test_module_constants_state_the_bound():
    assert RESOLUTION == 10.0 and MAX_SERIES == 100  # README "Charts" names them
    assert "6 points per series per minute" in metrics_mod.__doc__
