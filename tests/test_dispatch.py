"""The command parse flow in-process: privileges, authorize, errors, slow handlers, conflicts."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from lcbot import CmdType, CommandError, Pri, hookimpl
from tests.engine import running_bot


def run(coro):
    return asyncio.run(coro)


class Levels:
    """One GET command per privilege level, and a SET for admins."""

    __name__ = "levels"

    @hookimpl
    def register_commands(self, registry):
        for pri in Pri:
            registry.command(f"{pri.label}cmd", pri=pri)(lambda ctx, p=pri: f"ran {p.label}")

        @registry.command("setx", kind=CmdType.SET, pri=Pri.ADMIN)
        def setx(ctx):
            return f"x = {ctx.extra}"


@pytest.mark.parametrize("sender", ["root1", "admin1", "user1"])
@pytest.mark.parametrize("level", list(Pri))
def test_privilege_matrix(tmp_path, sender, level):
    async def go():
        async with running_bot(tmp_path, Levels()) as bot:
            user_pri = bot.app.roster.directory.by_name(sender).pri
            replies = await bot.send(sender, f"{level.label}cmd")
            expected = (
                f"ran {level.label}" if user_pri <= level else f"not allowed: {level.label}cmd"
            )
            assert replies == [expected]

    run(go())


def test_unknown_sender_gets_nothing_and_is_logged(tmp_path, caplog):
    async def go():
        async with running_bot(tmp_path, Levels()) as bot:
            with caplog.at_level(logging.INFO, logger="lcbot.dispatch"):
                await bot.transport.inject("mallory", "help")
            assert await bot.app.drain(5)
            assert bot.transport.sent == []
            assert "unknown sender 'mallory'" in caplog.text

    run(go())


def test_unknown_command_hint_and_set_usage(tmp_path):
    async def go():
        async with running_bot(tmp_path, Levels()) as bot:
            assert await bot.send("user1", "frobnicate now") == [
                "unknown command 'frobnicate' — send help"
            ]
            assert await bot.send("admin1", "setx") == ["usage: setx:VALUE"]
            assert await bot.send("admin1", "setx：7") == ["x = 7"]
            assert await bot.send("user1", "") == []

    run(go())


def test_denial_is_logged(tmp_path, caplog):
    async def go():
        async with running_bot(tmp_path, Levels()) as bot:
            with caplog.at_level(logging.WARNING, logger="lcbot.dispatch"):
                assert await bot.send("user1", "rootcmd") == ["not allowed: rootcmd"]
            assert "user1 may not run rootcmd" in caplog.text

    run(go())


class Gate:
    """authorize: bans user1 from usercmd, lets user1 run admincmd, abstains otherwise."""

    __name__ = "gate"

    @hookimpl
    def authorize(self, user, command, extra):
        if user.name == "user1" and command.name == "usercmd":
            return False
        if user.name == "user1" and command.name == "admincmd":
            return True
        return None


class Veto:
    __name__ = "veto"

    @hookimpl
    def authorize(self, user, command):  # a hook may take fewer arguments
        return False if command.name == "admincmd" else None


def test_authorize_hook_allow_deny_abstain(tmp_path):
    async def go():
        async with running_bot(tmp_path, Levels(), Gate()) as bot:
            assert await bot.send("user1", "usercmd") == ["not allowed: usercmd"]  # False
            assert await bot.send("user1", "admincmd") == ["ran admin"]  # True beats privilege
            assert await bot.send("user1", "rootcmd") == ["not allowed: rootcmd"]  # None
            assert await bot.send("admin1", "usercmd") == ["ran user"]

    run(go())


class Counting:
    """authorize: lets user1 hear about setx (extra None), counts every question."""

    __name__ = "counting"

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    @hookimpl
    def authorize(self, user, command, extra):
        self.asked.append((user.name, extra))
        return True if user.name == "user1" and extra is None else None


def test_set_notices_ask_authorize_once_per_user_and_command(tmp_path, monkeypatch):
    from lcbot import policy

    async def go():
        hook = Counting()
        async with running_bot(tmp_path, Levels(), hook) as bot:
            assert await bot.send("admin1", "setx 1") == ["x = 1"]
            assert await bot.send("admin1", "setx 2") == ["x = 2"]
            assert await bot.app.drain(5)
            told = [t for to, t in bot.transport.sent if to == "user1"]
            assert told == ["admin1 set setx: 1", "admin1 set setx: 2"]  # allowed by the hook
            # the invocations were asked with their extra; each notice question once
            assert hook.asked.count(("admin1", "1")) == 1 and hook.asked.count(("admin1", "2")) == 1
            for other in ("root1", "admin2", "user1"):
                assert hook.asked.count((other, None)) == 1, hook.asked
            monkeypatch.setattr(policy, "VERDICT_TTL", 0.0)  # answers kept no longer
            bot.app.plugins.policy.changed()
            assert await bot.send("admin1", "setx 3") == ["x = 3"]
            assert hook.asked.count(("user1", None)) == 2

    run(go())


def test_any_false_wins_over_true(tmp_path):
    async def go():
        async with running_bot(tmp_path, Levels(), Gate(), Veto()) as bot:
            assert await bot.send("user1", "admincmd") == ["not allowed: admincmd"]
            assert await bot.send("root1", "admincmd") == ["not allowed: admincmd"]

    run(go())


def test_help_lists_only_allowed_commands(tmp_path):
    async def go():
        async with running_bot(tmp_path, Levels()) as bot:
            (user_help,) = await bot.send("user1", "help")
            assert "usercmd" in user_help and "admincmd" not in user_help
            assert "quit" not in user_help
            (root_help,) = await bot.send("root1", "help")
            assert "rootcmd" in root_help and "quit" in root_help
            assert await bot.send("user1", "help admincmd") == ["no command 'admincmd' — send help"]
            (one,) = await bot.send("admin1", "help setx")
            assert one.startswith("setx:VALUE") and "least privilege admin" in one
            assert await bot.send("admin1", "whoami") == ["admin1 (admin)"]

    run(go())


class Failing:
    __name__ = "failing"

    @hookimpl
    def register_commands(self, registry):
        @registry.command("boom")
        def boom(ctx):
            raise RuntimeError("disk on fire")

        @registry.command("aboom")
        async def aboom(ctx):
            raise KeyError("nope")

        @registry.command("polite")
        def polite(ctx):
            raise CommandError("bad value")


def test_handler_exception_is_reported_and_bot_carries_on(tmp_path, caplog):
    async def go():
        async with running_bot(tmp_path, Failing()) as bot:
            with caplog.at_level(logging.ERROR):
                assert await bot.send("user1", "boom") == ["boom failed: disk on fire"]
                assert await bot.send("user1", "aboom") == ["aboom failed: 'nope'"]
            assert "Traceback" in caplog.text and "disk on fire" in caplog.text
            assert await bot.send("user1", "polite") == ["polite failed: bad value"]
            assert await bot.send("user1", "whoami") == ["user1 (user)"]

    run(go())


class Slow:
    __name__ = "slow"

    def __init__(self):
        self.release = threading.Event()

    @hookimpl
    def register_commands(self, registry):
        @registry.command("slow")
        def slow(ctx):
            assert self.release.wait(10)
            ctx.reply("extra line")
            return "finally"

        @registry.command("aslow")
        async def aslow(ctx):
            await asyncio.sleep(0.6)
            return "async done"


def test_slow_handler_gets_one_notice_then_result(tmp_path):
    async def go():
        slow = Slow()
        async with running_bot(tmp_path, slow, config={"bot": {"slow_notice": 0.2}}) as bot:
            task = asyncio.create_task(bot.transport.inject("user1", "slow"))
            deadline = time.monotonic() + 5
            while not bot.to("user1") and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert bot.to("user1") == ["slow: still running…"]
            await asyncio.sleep(0.5)  # no second notice
            assert bot.to("user1") == ["slow: still running…"]
            slow.release.set()
            await task
            assert await bot.app.drain(5)
            assert bot.lines("user1") == ["slow: still running…", "extra line", "finally"]
            assert await bot.send("admin1", "aslow") == [
                "aslow: still running…",
                "async done",
            ]

    run(go())


class Conflicts:
    __name__ = "conflicts"

    def __init__(self):
        self.active = 0
        self.max_active = 0
        self.order: list[str] = []
        self.lock = threading.Lock()
        self.release = threading.Event()

    @hookimpl
    def register_commands(self, registry):
        @registry.command("tune", kind=CmdType.SET, pri=Pri.ADMIN)
        def tune(ctx):
            with self.lock:
                self.active += 1
                self.max_active = max(self.max_active, self.active)
                self.order.append(ctx.extra)
            time.sleep(0.05)
            self.release.wait(10)
            with self.lock:
                self.active -= 1
            return f"tuned {ctx.extra}"

        @registry.command("deploy", kind=CmdType.SET, pri=Pri.ADMIN, concurrency="reject")
        def deploy(ctx):
            assert self.release.wait(10)
            return f"deployed {ctx.extra}"

        @registry.command("peek")
        def peek(ctx):
            return "peeked"


def test_set_commands_serialize_in_arrival_order(tmp_path):
    async def go():
        plugin = Conflicts()
        plugin.release.set()
        async with running_bot(tmp_path, plugin) as bot:
            await asyncio.gather(
                *(
                    bot.transport.inject(s, f"tune {i}")
                    for i, s in enumerate(["admin1", "admin2", "root1", "admin1", "admin2"])
                )
            )
            assert plugin.max_active == 1
            assert plugin.order == ["0", "1", "2", "3", "4"]

    run(go())


def test_reject_answers_busy_and_get_is_not_held_up(tmp_path):
    async def go():
        plugin = Conflicts()
        async with running_bot(tmp_path, plugin) as bot:
            first = asyncio.create_task(bot.transport.inject("admin1", "deploy v1"))
            await asyncio.sleep(0.1)
            assert await bot.send("admin2", "deploy v2") == [
                "busy: deploy started by admin1 0s ago"
            ]
            started = time.monotonic()
            assert await bot.send("user1", "peek") == ["peeked"]  # GET while SET runs
            assert time.monotonic() - started < 2
            plugin.release.set()
            await first
            assert await bot.app.drain(5)
            assert bot.to("admin1") == ["deployed v1"]

    run(go())


def test_successful_set_notifies_other_allowed_users(tmp_path):
    async def go():
        async with running_bot(tmp_path, Levels(), Gate()) as bot:
            assert await bot.send("admin1", "setx 30") == ["x = 30"]
            assert bot.to("admin2") == ["admin1 set setx: 30"]
            assert bot.to("root1") == ["admin1 set setx: 30"]
            assert bot.to("user1") == []  # not allowed to run setx

    run(go())


def test_failed_set_notifies_nobody(tmp_path):
    class BadSet:
        __name__ = "badset"

        @hookimpl
        def register_commands(self, registry):
            @registry.command("bad", kind=CmdType.SET, pri=Pri.ADMIN)
            def bad(ctx):
                raise CommandError("no")

    async def go():
        async with running_bot(tmp_path, BadSet()) as bot:
            assert await bot.send("admin1", "bad 1") == ["bad failed: no"]
            assert bot.to("admin2") == [] and bot.to("root1") == []

    run(go())


def test_quit_needs_yes_from_same_user(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            assert await bot.send("admin1", "quit") == ["not allowed: quit"]
            assert await bot.send("root1", "quit") == ["send yes within 60 s to stop the bot"]
            # any other answer cancels, and says so (the answer is not run as a command)
            assert await bot.send("root1", "whoami") == ["cancelled: quit (not confirmed)"]
            assert await bot.send("root1", "yes") == ["unknown command 'yes' — send help"]
            assert not bot.app.stopping
            await bot.send("root1", "quit")
            assert await bot.send("root1", "YES") == ["stopping: pending messages are sent first"]
            await asyncio.sleep(0)
            assert bot.app.stopping

    run(go())


def test_reply_from_another_thread(tmp_path):
    class Threads:
        __name__ = "threads"

        @hookimpl
        def register_commands(self, registry):
            @registry.command("fan")
            def fan(ctx):
                workers = [
                    threading.Thread(target=ctx.reply, args=(f"part {i}",)) for i in range(20)
                ]
                for w in workers:
                    w.start()
                for w in workers:
                    w.join()
                return "all parts"

    async def go():
        async with running_bot(tmp_path, Threads()) as bot:
            await bot.send("user1", "fan")
            lines = bot.lines("user1")
            assert sorted(lines[:-1]) == sorted(f"part {i}" for i in range(20))
            assert lines[-1] == "all parts"

    run(go())
