"""Regression tests for what a review of the redesign found: each failed before its fix.

The writer never dies and never loses a batch; no command runs after the shutdown hooks;
every hook (wrappers included) keeps its error policy; a reply is not held up by a mark
the locked database cannot store; and smaller state-keeping slips."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time

import pytest

from lcbot import Setting, hookimpl
from lcbot.alerts import AlertSettings, make_alert
from lcbot.db import Database
from lcbot.router import AlertRouter
from lcbot.testing import Harness
from lcbot.transports.memory import MemoryTransport
from lcbot.users import Directory, Pri, User
from tests.test_db import locked

TEAM = {"alice": "root", "bob": "user"}


def run(coro):
    return asyncio.run(coro)


# --- the writer -------------------------------------------------------------------------------


class Remember:
    __name__ = "remember"

    @hookimpl
    def register_commands(self, registry):
        @registry.command("remember")
        def remember(ctx):
            ctx.bot.state["last"] = os.fsdecode(b"report-\xff.txt")  # undecodable bytes
            return "remembered"


def test_undecodable_text_in_state_or_hooks_is_stored(tmp_path):
    class Tail:
        __name__ = "tail"

        @hookimpl
        def on_alert(self, alert):
            alert.text += "\nlast log line: " + os.fsdecode(b"disk \xff error")

    async def go():
        async with Harness(tmp_path, [Remember(), Tail()], TEAM) as bot:
            assert await bot.send("alice", "remember") == ["remembered"]
            await bot.alert("disk full", level="critical")
            assert bot.lines("bob")[-1] == "last log line: disk \ufffd error"
            assert not bot.app.failed
        with pytest.raises(KeyError):
            bot.app.bot("remember").state[os.fsdecode(b"\xff")] = 1

        async with Harness(tmp_path, [Remember()], TEAM) as again:
            assert again.app.bot("remember").state["last"] == os.fsdecode(b"report-\xff.txt")

    run(go())


def test_a_write_that_cannot_be_stored_is_dropped_alone(tmp_path, caplog):
    def poison(conn, *args):
        raise ValueError("not storable")

    async def go():
        async with Harness(tmp_path, users=TEAM) as bot:
            bot.app.outbox.record(poison)
            assert await bot.send("alice", "whoami") == ["alice (root)"]
            assert not bot.app.failed and bot.sent[-1] == ("alice", "alice (root)")

    with caplog.at_level(logging.ERROR):
        run(go())
    assert "dropped a message or write that cannot be stored" in caplog.text


def test_a_message_put_before_the_start_gets_a_fresh_id(tmp_path):
    async def go():
        async with Harness(tmp_path, users=TEAM) as first:
            await first.send("alice", "whoami")
        early = Harness(tmp_path, users=TEAM)
        early.app.bot("p").send("alice", "hello from before the start")  # id 1 is taken
        async with early:
            await early.settle()
            assert ("alice", "hello from before the start") in early.sent
            assert not early.app.outbox.dirty

    run(go())


# --- stopping ---------------------------------------------------------------------------------


def test_no_command_runs_after_the_shutdown_hooks(tmp_path):
    events: list[str] = []

    class Resource:
        __name__ = "resource"

        @hookimpl
        def lcbot_shutdown(self, bot):
            events.append("closed")

        @hookimpl
        def register_commands(self, registry):
            registry.command("use")(lambda ctx: events.append("used") or "used")

    async def go():
        bot = await Harness(tmp_path, [Resource()], TEAM).start()
        bot.transport.set_ready(False)  # a message waits: the drain takes its time
        bot.app.bot("resource").send("alice", "pending")
        stopping = asyncio.create_task(bot.app.stop(2))
        await asyncio.sleep(0.5)
        await bot.transport.inject("alice", "use")
        await stopping
        return bot

    bot = run(go())
    assert events == ["closed"]
    rows = sqlite3.connect(bot.app.db.path).execute("SELECT text FROM outbox").fetchall()
    assert ("the bot is stopping: not run; send it again once it is back",) in rows


def test_an_app_starts_once(tmp_path):
    async def go():
        bot = Harness(tmp_path, users=TEAM)
        async with bot:
            pass
        with pytest.raises(RuntimeError, match="started already"):
            await bot.app.start()

    run(go())


# --- hook policies ----------------------------------------------------------------------------


class Commands:
    __name__ = "commands"

    @hookimpl
    def register_commands(self, registry):
        registry.command("ping")(lambda ctx: "pong")


def test_raising_wrappers_keep_their_hook_policy(tmp_path):
    ran: list[str] = []

    class BadRegistrar:
        __name__ = "badreg"

        @hookimpl(wrapper=True)
        def register_commands(self, registry):
            raise RuntimeError("before yield")
            yield

    class AsyncStart:
        __name__ = "asyncstart"

        @hookimpl
        async def lcbot_startup(self, bot):
            ran.append("async startup")

    class BadStart:
        __name__ = "badstart"

        @hookimpl(wrapper=True)
        def lcbot_startup(self, bot):
            yield
            raise RuntimeError("after yield")

    class Hijack:
        __name__ = "hijack"

        @hookimpl(wrapper=True)
        def on_alert(self, alert):
            alert.text, alert.recipients = "HIJACKED", ["nobody"]
            raise RuntimeError("oops")
            yield

    class DenyAfter:
        __name__ = "denyafter"

        @hookimpl(wrapper=True)
        def authorize(self, user, command, extra):
            yield
            raise RuntimeError("policy lookup failed")

    plugins = [Commands(), BadRegistrar(), AsyncStart(), BadStart(), Hijack(), DenyAfter()]

    async def go():
        async with Harness(tmp_path, plugins, TEAM) as bot:
            records = bot.app.plugins.records
            assert records["badreg"].status == "failed" and records["badstart"].status == "failed"
            assert ran == ["async startup"]
            alert = await bot.alert("disk full", level="critical")
            assert alert.text == "disk full" and sorted(bot.outcome(alert)["to"]) == [
                "alice",
                "bob",
            ]
            assert await bot.send("bob", "ping") == ["not allowed: ping"]  # fail closed

    run(go())


def test_async_implementations_of_plain_hooks_are_refused(tmp_path):
    class AsyncDeny:
        __name__ = "asyncdeny"

        @hookimpl
        async def authorize(self, user, command, extra):
            return False

    with pytest.raises(RuntimeError, match="must be a plain def"):
        Harness(tmp_path, [AsyncDeny()], TEAM)


def test_a_disabled_plugin_loses_its_jobs_and_its_policy_keeps_denying(tmp_path):
    ticks: list[int] = []

    class Acl:
        __name__ = "acl"

        @hookimpl
        def lcbot_startup(self, bot):
            bot.every(0.05, lambda: ticks.append(1), name="poll")
            raise OSError("cannot read the ACL file")

        @hookimpl
        def authorize(self, user, command, extra):
            return None

    async def go():
        async with Harness(tmp_path, [Acl(), Commands()], TEAM) as bot:
            assert bot.app.plugins.records["acl"].status == "failed"
            await asyncio.sleep(0.3)
            assert ticks == []  # its job was removed with it
            assert await bot.send("bob", "ping") == ["not allowed: ping"]
            assert await bot.send("alice", "ping") == ["pong"]  # root keeps control

    run(go())


def test_an_unusable_config_schema_disables_the_plugin(tmp_path):
    class Bad:
        __name__ = "bad"

        @hookimpl
        def config_schema(self):
            return [{"key": "interval"}, Setting("when", "time", "12:00", "x")]

    bot = Harness(tmp_path, [Bad(), Commands()], TEAM)
    assert bot.app.plugins.records["bad"].status == "failed"
    assert "Setting objects" in bot.app.plugins.records["bad"].error


def test_a_plugin_cannot_take_another_plugins_command(tmp_path):
    class Thief:
        __name__ = "thief"

        @hookimpl
        def register_commands(self, registry):
            registry.command("mine")(lambda ctx: "mine")

    bot = Harness(tmp_path, [Thief()], TEAM)
    view = bot.app.bot("thief").registry
    with pytest.raises(ValueError, match="belongs to plugin 'basics'"):
        view.update("mine", name="help")
    assert bot.app.registry.get("help").plugin == "basics"
    controls = bot.app.bot("thief").alerts
    assert not hasattr(controls, "db") and not hasattr(controls, "writer")


# --- a locked database --------------------------------------------------------------------------


class Slow(MemoryTransport):
    async def send(self, address, text):
        await asyncio.sleep(0.3)  # a real WeChat send takes a while
        await super().send(address, text)


def test_a_reply_does_not_wait_for_a_mark_the_locked_database_cannot_store(tmp_path):
    async def go():
        bot = await Harness(tmp_path, users=TEAM, transport=Slow()).start()
        await bot.send("alice", "whoami")
        before = len(bot.transport.sent)
        bot.app.bot("p").send("alice", "stored, then sent while the lock is taken")
        await asyncio.sleep(0.1)
        with locked(bot.app.db.path, 4):
            start = time.monotonic()
            await bot.transport.inject("alice", "whoami")
            while len(bot.transport.sent) < before + 2:
                assert time.monotonic() - start < 3, "the reply waited for the lock"
                await asyncio.sleep(0.01)
        await bot.stop()

    run(go())


# --- state ------------------------------------------------------------------------------------


def test_dedup_keys_outlive_a_short_keep(tmp_path):
    class Writer:
        def __init__(self):
            self.sent = []

        def put(self, recipient, text, *rest):
            self.sent.append(text)

        def record(self, *args):
            pass

    class People:
        directory = Directory([User("alice", Pri.ROOT)])
        rooms = ()  # no group chat gets alerts

        def reachable(self, user):
            return True

    now = [1_000_000.0]
    db = Database(tmp_path / "x.db")
    db.open()
    writer = Writer()
    settings = AlertSettings(routes={"warning": Pri.USER}, repeat_interval=3600, keep=600)
    router = AlertRouter(settings, db, writer, People(), lambda a: True, clock=lambda: now[0])
    router.route(make_alert("disk full", "warning", key="disk:/"))
    now[0] += 900
    router.expire(now[0], 500)
    now[0] += 60
    router.route(make_alert("disk full", "warning", key="disk:/"))
    assert writer.sent == ["WARNING disk full"]  # the repeat is still de-duplicated


def test_healthz_counts_follow_retries_marked_while_stopped(tmp_path):
    config = {"ratelimit": {"max_attempts": 1}}

    async def go():
        async with Harness(tmp_path, users=TEAM, config=config) as first:
            first.transport.fail_next = 3
            for i in range(3):
                first.app.bot("p").send("alice", f"m{i}")
                await first.settle()
        db = sqlite3.connect(first.app.db.path, isolation_level=None)  # lcbot outbox retry ×2
        db.execute("UPDATE outbox SET state = 'retry' WHERE id IN (SELECT id FROM outbox LIMIT 2)")
        db.close()
        again = Harness(tmp_path, users=TEAM, config=config)
        again.transport.fail_next = 2
        async with again:
            await asyncio.sleep(1.0)
            await again.settle()
            assert again.app.health()["outbox"] == {"pending": 0, "sent": 0, "dead": 3}

    run(go())
