"""Quick ``def`` handlers run on the event loop; slow ones, and ``thread=True``, in the pool."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lcbot import handlers, hookimpl
from tests.engine import running_bot


class Where:
    """``where`` answers the thread it ran in; ``later N`` sleeps N ms after 3 quick runs."""

    __name__ = "where"

    def __init__(self) -> None:
        self.threads: dict[str, list[str]] = {}

    def _note(self, ctx) -> str:
        name = threading.current_thread().name
        self.threads.setdefault(ctx.command.name, []).append(name)
        return name

    @hookimpl
    def register_commands(self, registry):
        @registry.command("where")
        def where(ctx):
            return self._note(ctx)

        @registry.command("pooled", thread=True)
        def pooled(ctx):
            return self._note(ctx)

        @registry.command("later")
        def later(ctx):
            if len(self.threads.get("later", [])) >= 3:
                time.sleep(int(ctx.extra) / 1000)
            return self._note(ctx)

        @registry.command("nested")
        def nested(ctx):
            async def answer():
                return "from a loop of its own"

            self._note(ctx)
            coro = answer()
            try:
                return asyncio.run(coro)
            finally:
                coro.close()  # (never awaited when asyncio.run refused it)


@pytest.fixture(autouse=True)
def quickly(monkeypatch):
    monkeypatch.setattr(handlers, "INLINE_AFTER", 3)


MAIN = threading.main_thread().name


def test_a_quick_def_handler_moves_onto_the_event_loop(tmp_path):
    where = Where()

    async def go():
        async with running_bot(tmp_path, where) as bot:
            for _ in range(5):
                await bot.send("user1", "where")
                await bot.send("user1", "pooled")

    asyncio.run(go())
    assert [t == MAIN for t in where.threads["where"]] == [False, False, False, True, True]
    assert not any(t == MAIN for t in where.threads["pooled"])  # thread=True: always the pool


def test_a_handler_slow_on_the_loop_goes_back_to_the_pool_for_good(tmp_path, caplog):
    where = Where()

    async def go():
        async with running_bot(tmp_path, where) as bot:
            for _ in range(3):
                await bot.send("user1", "later 0")
            assert await bot.send("user1", "later 40") == [MAIN]  # on the loop, 40 ms
            for _ in range(5):
                (reply,) = await bot.send("user1", "later 0")
                assert reply != MAIN

    with caplog.at_level("INFO", logger="lcbot.dispatch"):
        asyncio.run(go())
    assert "command later took" in caplog.text and "thread pool now" in caplog.text


def test_a_handler_that_cannot_run_on_the_loop_fails_once_then_runs_in_the_pool(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(handlers, "INLINE_LIMIT", 5.0)  # asyncio.run() counts as quick
    where = Where()

    async def go():
        async with running_bot(tmp_path, where) as bot:
            return [await bot.send("user1", "nested") for _ in range(6)]

    replies = asyncio.run(go())
    assert [t == MAIN for t in where.threads["nested"]] == [False] * 3 + [True] + [False] * 2
    ok = ["from a loop of its own"]
    assert replies[:3] == [ok] * 3 and replies[4:] == [ok] * 2
    (failed,) = replies[3]
    assert failed.startswith("nested failed: ") and "running event loop" in failed


def test_a_slow_run_in_the_pool_halves_the_score_and_one_on_the_loop_ends_it():
    runner = handlers.Runner(None, print, lambda plugin: None, 0, print)  # type: ignore[arg-type]

    def handler(ctx):
        return None

    for took in (0.0001, 0.0001, 0.0001, 0.0001, 0.5, 0.0001):
        runner._learn(handler, took)
    assert runner.quick[handler] == 3  # 4 quick, halved to 2 by the slow one, +1
    runner.quick[handler] = -1  # sent back for good
    runner._learn(handler, 0.0001)
    assert runner.quick[handler] == -1
