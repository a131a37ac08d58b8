"""The audit log (a row per invocation, each outcome and each way of being denied, chat
``audit``, retention, ``lcbot audit`` in a subprocess) and the per-user rate limit."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from lcbot import CmdType, CommandError, Pri, hookimpl
from lcbot.db import audit as audit_sql
from lcbot.ratelimit import RateLimit
from lcbot.users import User
from tests.engine import running_bot
from tests.procs import lcbot, one_line


def run(coro):
    return asyncio.run(coro)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tools:
    __name__ = "tools"

    @hookimpl
    def register_commands(self, registry):
        @registry.command("echo")
        def echo(ctx):
            return ctx.extra or ""

        @registry.command("boom")
        def boom(ctx):
            raise CommandError("no")

        @registry.command("hold", kind=CmdType.SET, concurrency="reject")
        async def hold(ctx):
            await asyncio.sleep(0.3)
            return "held"

        @registry.command("secret", pri=Pri.ROOT)
        def secret(ctx):
            return "s"


class Gatekeeper:
    """Denies ``echo`` to admin2; raises for ``echo`` from user1 (denied, fail closed)."""

    __name__ = "gatekeeper"

    @hookimpl
    def authorize(self, user, command, extra):
        if command.name == "echo" and user.name == "admin2":
            return False
        if command.name == "echo" and user.name == "user1":
            raise RuntimeError("policy store down")
        return None


def rows(bot) -> list[dict]:
    return list(reversed(audit_sql.recent(bot.app.db.conn, 1000)))


def test_every_outcome_and_every_denial_is_a_row(tmp_path):
    async def go():
        async with running_bot(tmp_path, Tools(), Gatekeeper()) as bot:
            await bot.send("admin1", "echo " + "x" * 500)
            await bot.send("admin1", "boom")
            await bot.send("user1", "secret")
            await bot.send("admin2", "echo hi")
            await bot.send("user1", "echo hi")
            await bot.send("admin1", "hold")  # a SET without a value: its usage
            first = asyncio.ensure_future(bot.transport.inject("admin1", "hold 1"))
            await asyncio.sleep(0.1)
            assert await bot.send("admin2", "hold 2") == ["busy: hold started by admin1 0s ago"]
            await first
            await bot.settle()
            await bot.send("admin1", "nosuch")  # not a command: not audited
            await bot.transport.inject("mallory", "echo hi")  # unknown sender: not audited
            await bot.settle()
            got = [
                (r["user"], r["command"], r["decision"], r["by"], r["outcome"]) for r in rows(bot)
            ]
            assert got == [
                ("admin1", "echo", "allowed", "", "ok"),
                ("admin1", "boom", "allowed", "", "failed"),
                ("user1", "secret", "denied", "privilege", None),
                ("admin2", "echo", "denied", "authorize: gatekeeper", None),
                ("user1", "echo", "denied", "authorize: gatekeeper", None),
                ("admin1", "hold", "allowed", "", "usage"),
                ("admin2", "hold", "allowed", "", "busy"),
                ("admin1", "hold", "allowed", "", "ok"),
            ]
            first_row = rows(bot)[0]
            assert len(first_row["extra"]) == 200 and first_row["extra"].endswith("…")
            assert first_row["transport"] == "memory"
            assert first_row["contact"] == "admin1"  # the sender's contact id
            hold = rows(bot)[-1]
            assert hold["duration"] >= 0.25 and hold["extra"] == "1"

    run(go())


def test_audit_in_chat_is_for_root(tmp_path):
    async def go():
        async with running_bot(tmp_path, Tools()) as bot:
            assert await bot.send("root1", "audit") == ["no commands audited yet"]
            await bot.send("admin1", "echo hello")
            await bot.send("user1", "secret")
            assert await bot.send("admin1", "audit") == ["not allowed: audit"]
            (answer,) = await bot.send("root1", "audit 3")
            lines = answer.split("\n")
            assert [line.split(" ", 2)[2] for line in lines] == [
                "admin1 echo hello: ok",
                "user1 secret: denied (privilege)",
                "admin1 audit: denied (privilege)",
            ]

    run(go())


def test_retention_deletes_old_rows(tmp_path):
    async def go():
        config = {"storage": {"keep": "1h"}}
        async with running_bot(tmp_path, Tools(), config=config) as bot:
            audit = bot.app.safety.audit
            audit.clock = lambda: time.time() - 7200  # two hours ago
            await bot.send("admin1", "echo old")
            audit.clock = time.time
            await bot.send("admin1", "echo new")
            assert audit.expire(time.time(), 500) == (1, False)
            assert [r["extra"] for r in rows(bot)] == ["new"]

    run(go())


def test_rate_limit_one_reply_then_silence_then_recovery(tmp_path):
    async def go():
        config = {"bot": {"commands_per_minute": 3}}
        async with running_bot(tmp_path, Tools(), config=config) as bot:
            clock = bot.app.safety.limit.clock = Clock()
            for i in range(3):
                assert await bot.send("user1", f"echo {i}") == [str(i)]
                clock.now += 1
            assert await bot.send("user1", "echo 3") == ["slow down: 3 commands per minute"]
            assert await bot.send("user1", "echo 4") == []  # silence
            assert await bot.send("user1", "nosuch") == []
            assert await bot.send("admin1", "echo other") == ["other"]  # per user
            for _ in range(20):  # root is exempt by default
                assert await bot.send("root1", "echo r") == ["r"]
            await bot.transport.inject("mallory", "echo hi")  # strangers: still no reply
            await bot.settle()
            assert bot.messages_to("mallory") == []
            clock.now += 57  # 60 s after the first of the three: it leaves the window
            assert await bot.send("user1", "echo 5") == ["5"]
            assert await bot.send("user1", "echo 6") == ["slow down: 3 commands per minute"]
            denied = [r for r in rows(bot) if r["by"] == "rate limit"]
            assert [(r["user"], r["command"], r["extra"]) for r in denied] == [
                ("user1", "echo", "3"),
                ("user1", "echo", "4"),
                ("user1", "nosuch", None),
                ("user1", "echo", "6"),
            ]
            assert {r["decision"] for r in denied} == {"denied"}

    run(go())


def test_rate_limit_unit_root_setting_and_off():
    clock = Clock()
    root, user = User("r", Pri.ROOT), User("u", Pri.USER)
    limit = RateLimit(2, limit_root=True, clock=clock)
    assert [limit.check(root) for _ in range(4)] == [
        None,
        None,
        "slow down: 2 commands per minute",
        "",
    ]
    assert RateLimit(2, clock=clock).check(root) is None
    off = RateLimit(0, clock=clock)
    assert all(off.check(user) is None for _ in range(100))
    clock.now += 60
    assert limit.check(root) is None  # the window passed: told again next time


def test_rate_limit_off_and_bad_settings(tmp_path):
    async def go():
        config = {"bot": {"commands_per_minute": 0}}
        async with running_bot(tmp_path, Tools(), config=config) as bot:
            assert bot.app.safety.limit is None
            for _ in range(40):
                assert await bot.send("user1", "echo a") == ["a"]

    run(go())
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "lcbot.toml").write_text(
        '[bot]\ncommands_per_minute = -1\n[[users]]\nname = "a"\npri = "root"\n'
    )
    result = lcbot(folder, "config", "check")
    assert result.returncode == 2
    assert "bot.commands_per_minute" in one_line(result.stderr)


@pytest.fixture
def audited(tmp_path):
    """A data dir with a few audited commands (the bot stopped again)."""

    async def go():
        async with running_bot(tmp_path, Tools()) as bot:
            await bot.send("admin1", "echo one")
            await bot.send("user1", "secret")
            await bot.send("user1", "echo two")
            bot.app.safety.audit.clock = lambda: time.time() - 3 * 86400
            await bot.send("admin1", "echo old")

    run(go())
    return tmp_path


def test_cli_audit_json_and_filters(audited):
    def audit(*args):
        result = lcbot(audited, "audit", "--json", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    everything = audit()
    assert [(r["user"], r["extra"]) for r in everything] == [
        ("admin1", "old"),
        ("user1", "two"),
        ("user1", None),
        ("admin1", "one"),
    ]
    assert everything[2]["decision"] == "denied" and everything[2]["by"] == "privilege"
    assert set(everything[0]) >= {"at", "contact", "outcome", "duration", "transport", "room"}
    assert [r["extra"] for r in audit("--user", "user1")] == ["two", None]
    assert [r["extra"] for r in audit("--since", "1d")] == ["two", None, "one"]
    assert [r["extra"] for r in audit("-n", "1", "--user", "admin1", "--since", "1d")] == ["one"]
    table = lcbot(audited, "audit")
    assert table.returncode == 0 and "echo two" in table.stdout and "privilege" in table.stdout
    bad = lcbot(audited, "audit", "--since", "soon")
    assert bad.returncode == 2 and "--since" in one_line(bad.stderr)


def test_cli_audit_without_a_database(tmp_path):
    (tmp_path / "lcbot.toml").write_text('[[users]]\nname = "a"\npri = "root"\n')
    result = lcbot(tmp_path, "audit", "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert not (tmp_path / ".lcbot" / "lcbot.db").exists()
