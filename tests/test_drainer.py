"""The drainer with a controllable clock: pacing, coalescing, priority, retry, dead rows."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from lcbot.db import Database
from lcbot.drainer import Drainer, Pacing, split_text
from lcbot.errors import ConfigError
from lcbot.message import Feed
from lcbot.outbox import Outbox
from lcbot.schema import SCHEMA
from lcbot.transports.base import Address
from lcbot.transports.memory import MemoryTransport


def by_name(recipient: str) -> Address:
    return Address("name", recipient, recipient)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """An outbox, a ready memory transport and a drainer on a fake clock; no event loop tasks."""

    def __init__(self, tmp_path, pacing: Pacing) -> None:
        self.path = tmp_path / "lcbot.db"
        self.db = Database(self.path)
        self.db.open()
        self.feed = Feed()
        self.box = Outbox(self.db, self.feed)
        self.box.open()
        self.transport = MemoryTransport()
        self.transport.set_ready(True)
        self.clock = Clock()
        self.drainer = Drainer(
            self.feed, self.box, self.transport, by_name, pacing, clock=self.clock
        )

    def put(self, recipient: str, text: str, priority: int = 0) -> None:
        self.box.put(recipient, text, "alert" if priority else "reply", priority)

    def store(self) -> None:
        """Commit (messages and marks), and let the drainer take what the commit released."""
        assert self.box.flush()
        self.drainer.take_feed()

    async def round(self) -> list[tuple[str, str]]:
        before = len(self.transport.sent)
        await self.drainer.send_round()
        self.store()
        return self.transport.sent[before:]

    def states(self) -> dict[str, tuple[str, int]]:
        with sqlite3.connect(self.path) as db:
            return {t: (s, a) for t, s, a in db.execute("SELECT text, state, attempts FROM outbox")}


def run(coro):
    return asyncio.run(coro)


def test_storm_of_50_alerts_leaves_as_few_messages(tmp_path):
    async def go():
        rig = Rig(tmp_path, Pacing(per_second=1, per_minute=40, per_recipient_gap=3))
        texts = [f"CRITICAL disk {i} is {90 + i % 10}% full on host-{i:03d}" for i in range(50)]
        for text in texts:
            rig.put("alice", text)
        rig.store()
        messages = []
        for _ in range(10):
            messages += await rig.round()
            rig.clock.now += 3
        assert 1 <= len(messages) <= 5
        assert all(len(text) <= 2000 for _, text in messages)
        lines = [line for _, text in messages for line in text.split("\n")]
        assert lines == texts  # every alert, in order, newest last
        assert set(s for s, _ in rig.states().values()) == {"sent"}

    run(go())


def test_pacing_per_recipient_gap_and_per_minute(tmp_path):
    async def go():
        rig = Rig(tmp_path, Pacing(per_minute=3, per_recipient_gap=5))
        rig.put("alice", "a1")
        rig.put("bob", "b1")
        rig.store()
        assert await rig.round() == [("alice", "a1"), ("bob", "b1")]
        rig.put("alice", "a2")
        rig.put("bob", "b2")
        rig.store()
        rig.clock.now = 1004.9
        assert await rig.round() == []  # both inside their 5 s gap
        rig.clock.now = 1005.0
        assert await rig.round() == [("alice", "a2")]  # the third send this minute
        assert await rig.round() == []
        assert rig.drainer.next_send_at() == pytest.approx(1060.0)
        rig.clock.now = 1060.0
        assert await rig.round() == [("bob", "b2")]

    run(go())


def test_pacing_per_second(tmp_path):
    async def go():
        rig = Rig(tmp_path, Pacing(per_second=2))
        for name in ("alice", "bob", "carol"):
            rig.put(name, f"hi {name}")
        rig.store()
        assert [r for r, _ in await rig.round()] == ["alice", "bob"]
        rig.clock.now += 0.5
        assert await rig.round() == []
        rig.clock.now += 0.5
        assert await rig.round() == [("carol", "hi carol")]

    run(go())


def test_priority_replies_and_critical_before_warning_before_info(tmp_path):
    async def go():
        rig = Rig(tmp_path, Pacing(max_chars=30))
        rig.put("alice", "info one", priority=2)
        rig.put("alice", "warning one", priority=1)
        rig.put("alice", "reply one", priority=0)
        rig.put("alice", "critical one", priority=0)
        rig.store()
        sent = []
        for _ in range(5):
            sent += [t for _, t in await rig.round()]
        assert "\n".join(sent).split("\n") == [
            "reply one",
            "critical one",
            "warning one",
            "info one",
        ]
        # the most urgent recipient goes first
        rig.put("bob", "info for bob", priority=2)
        rig.put("carol", "critical for carol", priority=0)
        rig.store()
        assert [r for r, _ in await rig.round()] == ["carol", "bob"]

    run(go())


def test_unpaced_sends_one_coalesced_message_per_commit(tmp_path):
    async def go():
        rig = Rig(tmp_path, Pacing())
        for i in range(5):
            rig.put("alice", f"line {i}")
        rig.store()
        assert await rig.round() == [("alice", "\n".join(f"line {i}" for i in range(5)))]
        rig.put("alice", "later")
        rig.put("bob", "first")
        rig.store()
        await rig.drainer.send_round()  # bob's first message goes; its mark is not stored
        rig.put("bob", "second")
        assert rig.box.flush()  # stores "second" and bob's mark in one commit…
        rig.drainer.add(rig.feed.take())  # …but the drainer has only taken the message
        sent = len(rig.transport.sent)
        await rig.drainer.send_round()
        assert rig.transport.sent[sent:] == []  # bob waits until his mark is known stored
        rig.drainer.take_feed()
        await rig.drainer.send_round()
        assert rig.transport.sent[-1] == ("bob", "second")

    run(go())


def test_long_message_is_split_at_line_breaks(tmp_path):
    async def go():
        rig = Rig(tmp_path, Pacing(max_chars=50, max_parts=10))
        text = "\n".join(f"row {i:02d} " + "x" * 20 for i in range(6))  # 6 lines of 27 chars
        rig.put("alice", text)
        rig.put("alice", "after")
        rig.store()
        parts = []
        for _ in range(10):
            parts += [t for _, t in await rig.round()]
        assert all(len(p) <= 50 for p in parts)
        assert "\n".join(parts) == text + "\nafter"
        assert rig.states()[text] == ("sent", 0)

    run(go())


def test_split_text():
    assert split_text("a\nb\nc", 3) == ["a\nb", "c"]
    assert split_text("abcdefgh", 3) == ["abc", "def", "gh"]
    assert split_text("", 5) == [""]


def test_retry_with_backoff_then_dead_and_others_not_held_up(tmp_path):
    async def go():
        rig = Rig(tmp_path, Pacing(max_attempts=3))
        rig.put("alice", "a0")
        rig.put("alice", "a1")
        rig.put("bob", "b0")
        rig.store()
        rig.transport.fail_next = 1  # alice's coalesced message fails
        assert await rig.round() == [("bob", "b0")]
        assert rig.drainer.blocked_until["alice"] == 1001.0  # 1 s backoff
        assert await rig.round() == []
        rig.clock.now = 1001.0
        rig.transport.fail_next = 1
        assert await rig.round() == []
        assert rig.drainer.blocked_until["alice"] == 1003.0  # 2 s backoff
        rig.clock.now = 1003.0
        assert await rig.round() == [("alice", "a0\na1")]
        assert rig.states() == {"a0": ("sent", 2), "a1": ("sent", 2), "b0": ("sent", 0)}

        rig.put("carol", "c0")
        rig.store()
        rig.transport.fail_next = 3
        for _ in range(3):
            await rig.round()
            rig.clock.now += 600
        assert rig.states()["c0"] == ("dead", 3)
        assert rig.drainer.pending == 0
        assert rig.drainer.backoff(20) == 300.0  # capped at 5 min

    run(go())


def pacing(table: dict, paced: bool) -> Pacing:
    return Pacing.from_settings(SCHEMA["ratelimit"].load(table, "x"), paced)


def test_pacing_from_config():
    wechat = pacing({}, paced=True)
    assert (wechat.per_second, wechat.per_minute, wechat.per_recipient_gap) == (1, 40, 3)
    console = pacing({}, paced=False)
    assert (console.per_second, console.per_minute, console.per_recipient_gap) == (0, 0, 0)
    tuned = pacing({"per_minute": 0, "max_chars": 500}, paced=True)
    assert tuned.per_minute == 0 and tuned.per_second == 1 and tuned.max_chars == 500
    with pytest.raises(ConfigError, match=r"ratelimit\.per_second"):
        pacing({"per_second": "fast"}, paced=False)
    with pytest.raises(ConfigError, match=r"ratelimit\.max_chars"):
        pacing({"max_chars": 10}, paced=False)
    assert SCHEMA["ratelimit"].unknown_keys({"per_hour": 3}) == ["per_hour"]
