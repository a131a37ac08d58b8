"""Start and stop as one stack: a failed start unwinds what had started (tasks, listener,
database, data-dir lock, handler threads, signal handlers), and a clean stop runs in the
reverse order of the start."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time

import pytest

from lcbot import hookimpl
from lcbot.errors import LcbotError
from lcbot.process import data_dir_lock
from lcbot.testing import Harness
from lcbot.transports.memory import MemoryTransport
from tests.procs import bots, make_project

TEAM = {"root1": "root", "user1": "user"}


def run(coro):
    return asyncio.run(coro)


@contextlib.contextmanager
def taken_port():
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lcbot-handler")]


def assert_nothing_left(bot: Harness, before: dict) -> None:
    """No task, listener, connection, lock, handler thread or signal handler of ``bot``."""
    assert bot.app.db.conn is None, "the database is still open"
    with data_dir_lock(bot.app.config.bot.data_dir):  # the lock was released
        pass
    deadline = time.monotonic() + 5
    while handler_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handler_threads() == [], "handler threads still running"
    for sig in (signal.SIGINT, signal.SIGTERM):
        assert signal.getsignal(sig) == before[sig], f"{sig!r} not restored"


def signals_now() -> dict:
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


class BrokenTransport(MemoryTransport):
    """Fails to start: everything before it in the stack has started by then."""

    async def start(self, on_message) -> None:
        raise ConnectionError("the chat service refused us")


class Lifecycle:
    __name__ = "lifecycle"

    def __init__(self) -> None:
        self.events: list[str] = []

    @hookimpl
    def lcbot_startup(self, bot):
        self.events.append("startup")

    @hookimpl
    def lcbot_shutdown(self, bot):
        self.events.append("shutdown")
        bot.send("root1", "going down")  # still delivered: the drain comes after


def test_port_taken_unwinds_everything(tmp_path):
    before = signals_now()
    plugin = Lifecycle()

    async def go():
        with taken_port() as port:
            config = {"ingress": {"enabled": True, "listen": f"127.0.0.1:{port}"}}
            bot = Harness(tmp_path, [plugin], TEAM, config)
            with pytest.raises(LcbotError, match=f"ingress cannot listen on 127.0.0.1:{port}"):
                await bot.app.start(signals=True)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == [], others
        assert bot.transport.on_message is None, "the transport started before the listener"
        return bot

    bot = run(go())
    assert plugin.events == []  # it failed before the plugins started
    assert_nothing_left(bot, before)


def test_a_late_failure_stops_what_had_started(tmp_path):
    before = signals_now()
    plugin = Lifecycle()

    async def go():
        bot = Harness(tmp_path, [plugin], TEAM, transport=BrokenTransport())
        with pytest.raises(ConnectionError):
            await bot.app.start(signals=True)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == [], [t.get_name() for t in others]  # writer, pool… all gone
        return bot

    bot = run(go())
    assert plugin.events == []
    assert_nothing_left(bot, before)
    again = Harness(tmp_path, [plugin], TEAM)  # the same data dir starts again
    run(again.start())
    run(again.stop())
    assert plugin.events == ["startup", "shutdown"]


def test_clean_stop_unwinds_in_reverse_order(tmp_path):
    before = signals_now()
    plugin = Lifecycle()
    order: list[str] = []

    class Watching(MemoryTransport):
        async def stop(self) -> None:
            order.append(f"transport stops after {len(self.sent)} sends")
            await super().stop()

    async def go():
        config = {"ingress": {"enabled": True, "listen": "127.0.0.1:0"}}
        bot = Harness(tmp_path, [plugin], TEAM, config, transport=Watching())
        await bot.app.start(signals=True)
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]  # lcbot's, while running
        port = bot.app.ingress.port
        await bot.send("user1", "whoami")
        await bot.app.stop()
        with pytest.raises(OSError):  # the listener is closed
            await asyncio.open_connection("127.0.0.1", port)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []
        return bot

    bot = run(go())
    assert plugin.events == ["startup", "shutdown"]
    # the shutdown hook's message went out before the transport stopped
    assert ("root1", "going down") in bot.transport.sent
    assert order == [f"transport stops after {len(bot.transport.sent)} sends"]
    assert_nothing_left(bot, before)


def test_lcbot_run_with_the_port_taken_exits_1_with_one_line(tmp_path):
    with taken_port() as port:
        project = make_project(
            tmp_path / "bot", extra=f'[ingress]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
        )
        with bots() as start:
            bot = start(project)  # stdin stays open: the failure alone must end the process
            code = bot.wait()
            stderr = bot.stderr
    assert code == 1, stderr
    lines = stderr.strip().splitlines()
    assert lines == [f"error: ingress cannot listen on 127.0.0.1:{port}: Address already in use"]
