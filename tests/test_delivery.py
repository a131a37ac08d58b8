"""Delivery hardening: long messages go out whole, in a bounded number of parts, resumed
after a crash; echoed input is quoted short; a large backlog is read in windows."""

from __future__ import annotations

import asyncio
import re
import signal
import time

from lcbot import CmdType, Pri, hookimpl
from lcbot.backlog import WINDOW
from lcbot.db import DB_NAME, connect, transaction
from lcbot.testing import Harness
from lcbot.text import QUOTE, split_text, truncate
from lcbot.transports.memory import MemoryTransport
from tests.procs import bots, lcbot, make_project, query

TEAM = {"alice": "root", "bob": "admin"}


def run(coro):
    return asyncio.run(coro)


# --- splitting and truncation ---------------------------------------------------------------


def test_split_text_keeps_every_character_and_respects_limits():
    text = "\n".join(f"line {i:03d} " + "x" * (i % 37) for i in range(500))
    parts = split_text(text, 100)
    assert all(len(p) <= 100 for p in parts)
    assert "\n".join(parts) == text  # the breaks dropped are exactly the joins
    assert split_text("a\nb\nc", 3) == ["a\nb", "c"]
    assert split_text("abcdefgh", 3) == ["abc", "def", "gh"]
    assert split_text("", 5) == [""]


def test_split_text_stops_at_max_parts_with_a_marker():
    text = "y" * 1000
    parts = split_text(text, 100, max_parts=3)
    assert len(parts) == 3 and all(len(p) <= 100 for p in parts)
    assert re.search(r"… \(truncated 7\d\d characters\)$", parts[-1])
    assert len(truncate("v" * 1000, 100)) == 100
    assert truncate("z" * 50, 20) == "z" * 19 + "…"  # a tiny limit: a short marker


def test_a_long_message_goes_out_whole_with_no_other_traffic(tmp_path):
    config = {"ratelimit": {"per_recipient_gap": 0.2, "max_chars": 100}}

    async def go():
        async with Harness(tmp_path, users=TEAM, config=config) as bot:
            bot.app.bot("p").send("alice", "L" * 250)  # three parts, 0.2 s apart
            deadline = time.monotonic() + 5
            while len(bot.to("alice")) < 3:
                assert time.monotonic() < deadline, f"parts stalled: {bot.to('alice')}"
                await asyncio.sleep(0.02)
            assert "".join(bot.to("alice")) == "L" * 250

    run(go())


def test_a_huge_reply_is_cut_to_max_parts(tmp_path):
    class Flood:
        __name__ = "flood"

        @hookimpl
        def register_commands(self, registry):
            registry.command("flood")(lambda ctx: "w" * 10_000_000)

    config = {"ratelimit": {"max_chars": 2000, "max_parts": 5}}

    async def go():
        async with Harness(tmp_path, [Flood()], TEAM, config) as bot:
            (stored,) = await bot.send("alice", "flood")
            assert len(stored) == 10_000 and re.search(
                r"\(truncated 9,99\d,\d{3} characters\)$", stored
            )
            parts = bot.to("alice")
            assert len(parts) <= 5 and all(len(p) <= 2000 for p in parts)
            assert "".join(parts) == stored

    run(go())


class Interval:
    __name__ = "interval"

    @hookimpl
    def register_commands(self, registry):
        @registry.command("echo", kind=CmdType.SET, pri=Pri.ADMIN)
        def echo(ctx):
            return "ok"


def test_replies_quote_user_input_short(tmp_path):
    long_word = "h" * 100_000

    async def go():
        async with Harness(tmp_path, [Interval()], TEAM) as bot:
            replies = [
                *await bot.send("alice", f"help {long_word}"),
                *await bot.send("alice", "q" * 20 + "x" * 100_000),  # not a command name
                *await bot.send("alice", f"silence {'k' * 50_000} 1h"),
                *await bot.send("alice", f"mute {'9' * 100_000}d"),
            ]
            await bot.send("alice", f"echo {long_word}")
            assert all(len(r) < QUOTE + 100 for r in replies), [len(r) for r in replies]
            assert all(len(t) < QUOTE + 100 for t in bot.lines("bob"))  # the SET notice too

    run(go())


# --- a crash in the middle of a long message --------------------------------------------------


LINE = re.compile(r"^(?:CRITICAL )?(L\d{3} x+)$")


def alert_lines(output: list[str]) -> list[str]:
    return [m[1] for m in map(LINE.match, output) if m]


def test_parts_are_resumed_after_kill_9(tmp_path):
    project = make_project(
        tmp_path / "bot",
        {"me": "root"},
        extra="[ratelimit]\nmax_chars = 100\nmax_parts = 20\nper_recipient_gap = 0.3\n",
    )
    lines = [f"L{i:03d} " + "x" * 5 for i in range(40)]  # 40 lines of 10: about 5 parts
    raised = lcbot(project, "alert", "-", "--level", "critical", input="\n".join(lines))
    assert raised.returncode == 0, raised.stderr
    printed: list[str] = []
    kills = 3
    for _ in range(kills):  # killed each time a part or two went out
        with bots() as start:
            bot = start(project)
            try:
                bot.expect(lambda line: LINE.match(line) is not None, timeout=10)
            except AssertionError:
                raise AssertionError(bot.stderr[-3000:]) from None
            time.sleep(0.35)
            bot.proc.send_signal(signal.SIGKILL)
            assert bot.wait() == -signal.SIGKILL
            bot.rest()
            printed += alert_lines(bot.seen)
    with bots() as start:
        bot = start(project)
        bot.end_input()
        assert bot.wait(20) == 0
        bot.rest()
        printed += alert_lines(bot.seen)
    assert sorted(set(printed)) == lines  # every line arrived
    per_part = 100 // (len(lines[0]) + 1) + 1
    repeated = len(printed) - len(lines)
    assert repeated <= kills * per_part, f"{repeated} lines repeated over {kills} kills"
    assert query(project, "SELECT state FROM outbox") == [("sent",)]


# --- a large backlog ----------------------------------------------------------------------------


class Offline(MemoryTransport):
    """Not ready until the test says so."""

    async def start(self, on_message) -> None:
        self.on_message = on_message


def test_a_backlog_to_one_person_is_read_in_windows(tmp_path):
    rows = 3 * WINDOW + 17
    (tmp_path / "data").mkdir(parents=True)
    db = connect(tmp_path / "data" / DB_NAME)
    with transaction(db):
        db.executemany(
            "INSERT INTO outbox (id, recipient, text, kind, created, priority) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(i, "alice", f"backlog {i:04d}", "alert:info", 1.0, 2) for i in range(1, rows + 1)],
        )
    db.close()

    async def go():
        async with Harness(tmp_path, users=TEAM, transport=Offline()) as bot:
            bot.app.bot("p").send("alice", "urgent reply")  # priority 0: ahead of it all
            await asyncio.sleep(0.2)
            held = bot.app.drainer.pending
            bot.transport.set_ready(True)
            await bot.settle()
            return bot, held

    bot, held = run(go())
    assert held <= WINDOW + 1, held  # not the whole backlog
    lines = bot.lines("alice")
    assert lines == ["urgent reply", *(f"backlog {i:04d}" for i in range(1, rows + 1))]
