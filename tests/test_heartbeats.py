"""Heartbeats (dead-man's switches): deadline maths, checks, and the running bot's
``Heartbeats`` on a real in-process bot (real SQLite file, the real router and outbox).

The component's clock is set by the tests (``heartbeats.clock``) so that an hour passes at
once; a restart is a new App on the same data dir.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from pathlib import Path

import pytest

from lcbot import hookimpl
from lcbot.beats import (
    Heartbeat,
    InvalidBeat,
    back_text,
    check_beat,
    check_key,
    late_text,
    parse_period,
)
from lcbot.db import connect, transaction
from lcbot.db import heartbeats as sql
from tests.engine import running_bot

HOUR = 3600.0
ADMINS = ["root1", "admin1", "admin2"]  # who gets warnings by default
LATE = "WARNING backup: no heartbeat for 1h12m (expected every 1h)"
BACK = "RESOLVED backup: heartbeat back after 1h20m"


def run(coro):
    return asyncio.run(coro)


class Clock:
    """The heartbeats' clock, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def beat_from_outside(path: Path, key: str, every: float, at: float, **kw) -> None:
    """What ``lcbot heartbeat`` does: a row written by another connection."""
    db = connect(path)
    with transaction(db):
        sql.beat(db, key, every, kw.get("grace", 0.0), kw.get("level", "warning"), "cli", at)
    db.close()


def row(bot, key: str) -> tuple | None:
    return bot.app.db.conn.execute(
        "SELECT last_beat, late, removed FROM heartbeats WHERE key = ?", (key,)
    ).fetchone()


async def polled(bot) -> None:
    """Let the bot take what other processes stored (its own poll, then a settle)."""
    hb = bot.app.heartbeats
    hb.poll()
    hb.check()
    await bot.settle()


# --- values -------------------------------------------------------------------------------


def test_deadline_is_last_beat_plus_every_plus_grace():
    beat = Heartbeat("backup", every=HOUR, grace=600, last_beat=1000.0)
    assert beat.due == 1000 + HOUR + 600
    assert not beat.is_late(beat.due)  # late only once the deadline has passed
    assert beat.is_late(beat.due + 0.001)
    assert beat.as_dict(beat.due + 1)["state"] == "late"
    assert beat.as_dict(beat.due)["state"] == "ok"


def test_texts_use_lcbot_durations():
    beat = Heartbeat("backup", every=HOUR, last_beat=0.0)
    assert late_text(beat, 72 * 60) == "backup: no heartbeat for 1h12m (expected every 1h)"
    assert back_text("backup", 80 * 60) == "backup: heartbeat back after 1h20m"
    day = Heartbeat("dump", every=86400 + 1800, last_beat=0.0)
    assert late_text(day, 2 * 86400) == "dump: no heartbeat for 2d (expected every 1d30m)"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (("a b", 60, 0, "warning"), "key"),
        (("", 60, 0, "warning"), "key"),
        (("-x", 60, 0, "warning"), "key"),
        (("k" * 101, 60, 0, "warning"), "key"),
        (("k/v", 60, 0, "warning"), "key"),
        (("k", 0, 0, "warning"), "every"),
        (("k", -1, 0, "warning"), "every"),
        (("k", math.nan, 0, "warning"), "every"),
        (("k", math.inf, 0, "warning"), "every"),
        (("k", "1h", 0, "warning"), "every"),
        (("k", True, 0, "warning"), "every"),
        (("k", 60, -1, "warning"), "grace"),
        (("k", 60, 367 * 86400, "warning"), "grace"),
        (("k", 60, 0, "loud"), "level"),
    ],
)
def test_a_bad_beat_names_its_field(fields, field):
    with pytest.raises(InvalidBeat) as caught:
        check_beat(*fields)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_good_beats_and_periods():
    assert check_beat("nightly-backup", 60, 0, "critical") == (
        "nightly-backup",
        60.0,
        0.0,
        "critical",
    )
    assert check_key("db.dump:eu@host_1") == "db.dump:eu@host_1"
    assert check_key("备份") == "备份"  # letters of any script
    assert parse_period("1h30m", "--every") == 5400
    for nothing in ("0", "0s", "0m", "0.0h", " 00 "):
        assert parse_period(nothing, "--grace", zero=True) == 0
    with pytest.raises(InvalidBeat, match="--every: a duration must be longer than zero"):
        parse_period("0", "--every")


# --- the running bot ------------------------------------------------------------------------


def test_late_raises_one_alert_and_the_next_beat_resolves_it(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            hb = bot.app.heartbeats
            clock = hb.clock = Clock(time.time())
            hb.beat("backup", HOUR, grace=600)
            clock.now += HOUR + 600  # exactly due: not late yet
            assert hb.check() == 0
            clock.now += 120  # 1h12m without a beat
            assert hb.check() == 1
            assert hb.check() == 0  # one alert, however long it stays late
            clock.now += HOUR
            assert hb.check() == 0
            await bot.settle()
            for user in ADMINS:
                assert bot.to(user) == [LATE]
            assert bot.to("user1") == []  # a warning: admins and root only
            assert [b.key for b in bot.app.bot("x").heartbeats if b.is_late(clock.now)]
            clock.now -= HOUR - 8 * 60  # the beat comes 1h20m after the last one
            hb.beat("backup", HOUR, grace=600)
            await bot.settle()
            for user in ADMINS:
                assert bot.to(user) == [LATE, BACK]
            assert hb.check() == 0
            await bot.settle()
            assert row(bot, "backup")[1] is None  # the late mark is gone from the table
            alerts = bot.app.db.conn.execute(
                "SELECT key, resolved, source, level FROM alerts ORDER BY id"
            ).fetchall()
            assert alerts == [
                ("heartbeat:backup", 0, "heartbeat", "warning"),
                ("heartbeat:backup", 1, "heartbeat", "warning"),
            ]

    run(go())


def test_late_again_after_a_resolve_is_not_deduplicated(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            hb = bot.app.heartbeats
            clock = hb.clock = Clock(time.time())
            for _ in range(2):
                hb.beat("job", 60, level="critical")
                clock.now += 61
                assert hb.check() == 1
            hb.beat("job", 60, level="critical")
            await bot.settle()
            late = "CRITICAL job: no heartbeat for 1m1s (expected every 1m)"
            back = "RESOLVED job: heartbeat back after 1m1s"
            assert bot.lines("user1") == [late, back, late, back]  # critical: everyone

    run(go())


def test_restart_keeps_deadlines_and_the_late_state(tmp_path):
    start = time.time() - 2 * HOUR

    async def go():
        async with running_bot(tmp_path) as bot:
            hb = bot.app.heartbeats
            clock = hb.clock = Clock(start)
            hb.beat("backup", HOUR, grace=600)
            hb.beat("fine", 3 * HOUR)
            clock.now = start + 72 * 60
            assert hb.check() == 1
            await bot.settle()
            assert bot.to("root1") == [LATE]
            path = bot.app.db.path
        # a second bot on the same data dir, at the real time (2 h after the last beat)
        async with running_bot(tmp_path) as bot:
            hb = bot.app.heartbeats
            assert {b.key: b.late for b in hb.listing()} == {"backup": start, "fine": None}
            assert hb.check() == 0  # already alerted before the restart: not again
            await bot.settle()
            assert bot.sent == []
            beat_from_outside(path, "backup", HOUR, time.time())
            await polled(bot)
            (text,) = bot.to("root1")
            assert text.startswith("RESOLVED backup: heartbeat back after 2h"), text
            assert [b.key for b in hb.listing() if b.late is not None] == []

    run(go())


def test_a_heartbeat_late_while_the_bot_was_stopped_alerts_at_start(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            path = bot.app.db.path
        beat_from_outside(path, "dump", HOUR, time.time() - 2 * HOUR, level="critical")
        beat_from_outside(path, "ok", HOUR, time.time())
        async with running_bot(tmp_path) as bot:
            await bot.settle()
            assert bot.to("user1") == ["CRITICAL dump: no heartbeat for 2h (expected every 1h)"]
            assert row(bot, "ok")[1] is None

    run(go())


def test_beats_of_other_processes_are_seen_by_the_running_bot(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            path = bot.app.db.path
            beat_from_outside(path, "cron", 60, time.time() - 120)  # late already
            deadline = time.monotonic() + 10
            while not bot.to("root1"):  # the bot's own poll: no help from the test
                assert time.monotonic() < deadline, "the beat was not seen"
                await asyncio.sleep(0.02)
                await bot.app.drain(1)
            (text,) = bot.to("root1")
            assert re.fullmatch(
                r"WARNING cron: no heartbeat for 2m\d?s? \(expected every 1m\)", text
            )

    run(go())


def test_removing_forgets_and_resolves_a_late_heartbeat(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            hb = bot.app.heartbeats
            path = bot.app.db.path
            beat_from_outside(path, "old", 60, time.time() - 120)
            beat_from_outside(path, "other", 60, time.time() - 120)
            await polled(bot)
            assert len(bot.lines("root1")) == 2
            db = connect(path)  # what `lcbot heartbeat old --remove` does
            with transaction(db):
                assert sql.remove(db, "old")
                assert not sql.remove(db, "old")  # once
            db.close()
            await polled(bot)
            assert bot.lines("root1")[2:] == ["RESOLVED old: heartbeat removed"]
            assert hb.remove("other")  # in-process (the chat command)
            assert not hb.remove("other")
            await bot.settle()
            assert bot.lines("root1")[3:] == ["RESOLVED other: heartbeat removed"]
            assert hb.listing() == []
            await polled(bot)
            assert bot.app.db.conn.execute("SELECT count(*) FROM heartbeats").fetchone() == (0,)

    run(go())


def test_chat_lists_and_removes_heartbeats(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            assert await bot.send("admin1", "heartbeats") == [
                "no heartbeats yet; a job creates one with: lcbot heartbeat KEY --every 1h"
            ]
            hb = bot.app.heartbeats
            hb.clock = Clock(time.time() - 2 * HOUR)
            hb.beat("backup", HOUR, grace=600)
            hb.clock = Clock(time.time() - 12 * 60)
            hb.beat("sync", HOUR)
            hb.clock = time.time
            (listing,) = await bot.send("admin1", "heartbeats")
            assert listing.split("\n") == [
                "heartbeats:",
                "backup — every 1h (grace 10m) — last seen 2h ago — LATE",
                "sync — every 1h — last seen 12m ago — ok",
            ]
            assert await bot.send("user1", "heartbeats") == ["not allowed: heartbeats"]
            assert await bot.send("admin1", "heartbeats remove sync") == ["heartbeat sync removed"]
            assert await bot.send("admin1", "heartbeats remove sync") == ["no heartbeat sync"]
            assert await bot.send("admin1", "heartbeats frobnicate") == [
                "heartbeats failed: usage: heartbeats [remove KEY]"
            ]

    run(go())


def test_a_plugin_beats_through_bot_heartbeats(tmp_path):
    class Pinger:
        @hookimpl
        def register_commands(self, registry):
            @registry.command("ping")
            def ping(ctx):  # a plain def: from a worker thread
                ctx.bot.heartbeats.beat("pinger", 60, level="info")
                with pytest.raises(ValueError, match="every"):
                    ctx.bot.heartbeats.beat("pinger", 0)
                return f"{len(ctx.bot.heartbeats)} heartbeat(s)"

    async def go():
        async with running_bot(tmp_path, ("pinger", Pinger())) as bot:
            assert await bot.send("user1", "ping") == ["1 heartbeat(s)"]
            (beat,) = bot.app.heartbeats.listing()
            assert (beat.key, beat.every, beat.level, beat.source) == (
                "pinger",
                60,
                "info",
                "pinger",
            )
            await bot.settle()
            assert row(bot, "pinger") is not None  # stored by the writer

    run(go())
