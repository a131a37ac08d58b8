"""Confirmations (``confirm=True``) and two-person approval (``approve=True``) on a real bot:
yes / anything else / timeout, approve by a second admin, self-approval refused, deny,
expiry, both together, quit, and a job's command that needs approval. Time is the gate's
clock, moved by the test."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time

from lcbot import CmdType, Pri, hookimpl
from lcbot.db import audit as audit_sql
from tests.engine import running_bot
from tests.procs import child_env


def run(coro):
    return asyncio.run(coro)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Risky:
    __name__ = "risky"

    @hookimpl
    def register_commands(self, registry):
        @registry.command("wipe", pri=Pri.ADMIN, confirm=True, help="wipe the cache")
        def wipe(ctx):
            return "wiped"

        @registry.command("deploy", kind=CmdType.SET, pri=Pri.ADMIN, approve=True)
        def deploy(ctx):
            return f"deployed {ctx.extra}"

        @registry.command("nuke", pri=Pri.ADMIN, confirm=True, approve=True)
        def nuke(ctx):
            return "nuked"


def rows(bot) -> list[dict]:
    """The stored audit rows, oldest first."""
    return list(reversed(audit_sql.recent(bot.app.db.conn, 1000)))


def row_of(bot, command: str) -> dict:
    return [r for r in rows(bot) if r["command"] == command][-1]


async def until(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
    return value


def test_confirm_yes_runs_it_other_answers_and_timeouts_cancel_and_say_so(tmp_path):
    async def go():
        async with running_bot(tmp_path, Risky()) as bot:
            clock = bot.app.safety.gate.clock = Clock()
            assert await bot.send("admin1", "wipe") == ["send yes within 60 s to run wipe"]
            assert await bot.send("admin1", "Yes ") == ["wiped"]
            assert row_of(bot, "wipe")["by"] == "confirmed"
            assert row_of(bot, "wipe")["outcome"] == "ok"

            await bot.send("admin1", "wipe")
            assert await bot.send("admin1", "no") == ["cancelled: wipe (not confirmed)"]
            assert row_of(bot, "wipe")["decision"] == "denied"
            assert row_of(bot, "wipe")["by"] == "not confirmed"
            # the answer was the answer: a late yes is just a word
            assert await bot.send("admin1", "yes") == ["unknown command 'yes' — send help"]

            # another user's yes does not confirm it
            await bot.send("admin1", "wipe")
            assert await bot.send("admin2", "yes") == ["unknown command 'yes' — send help"]

            clock.now += 61  # silence past the limit: cancelled, and said so
            bot.app.safety.gate.sweep()
            await bot.settle()
            assert bot.messages_to("admin1")[-1] == "cancelled: wipe (no yes within 60 s)"
            assert row_of(bot, "wipe")["by"] == "confirmation timed out"
            assert await bot.send("admin1", "yes") == ["unknown command 'yes' — send help"]

            # a yes that comes after the limit but before the sweep: the question is over
            await bot.send("admin1", "wipe")
            clock.now += 61
            got = await bot.send("admin1", "yes")
            assert got == [
                "cancelled: wipe (no yes within 60 s)",
                "unknown command 'yes' — send help",
            ]
            assert [r["outcome"] for r in rows(bot) if r["command"] == "wipe"] == [
                "ok",
                None,
                None,
                None,
            ]

    run(go())


def test_approve_by_a_second_admin_runs_it_and_tells_the_sender(tmp_path):
    async def go():
        async with running_bot(tmp_path, Risky()) as bot:
            got = await bot.send("admin1", "deploy prod")
            assert got == ["waiting for approval #1 (root1, admin2; 10 min)"]
            notice = (
                "approval #1: admin1 asks to run deploy prod — "
                "send approve 1 or deny 1 within 10 min"
            )
            assert bot.messages_to("admin2") == [notice]
            assert bot.messages_to("root1") == [notice]
            assert bot.messages_to("user1") == []  # users are not asked
            assert await bot.send("admin2", "approvals") == [
                "waiting for approval:\n#1 admin1: deploy prod (10 min left)"
            ]
            # the sender cannot approve their own request; a user may not approve at all
            assert await bot.send("admin1", "approve 1") == [
                "you cannot approve your own request: another admin or root must"
            ]
            assert await bot.send("user1", "approve 1") == ["not allowed: approve"]
            got = await bot.send("admin2", "approve #1")
            assert got[0] == "approved #1: deploy prod runs now"
            await until(lambda: "deployed prod" in bot.messages_to("admin1"))
            assert bot.messages_to("admin1")[-2:] == [
                "approved by admin2: deploy prod",
                "deployed prod",
            ]
            row = row_of(bot, "deploy")
            assert (row["decision"], row["by"], row["outcome"]) == (
                "allowed",
                "approved by admin2",
                "ok",
            )
            assert row["user"] == "admin1" and row["extra"] == "prod"
            # the SET's usual notice goes to the others allowed to run it
            await until(lambda: "admin1 set deploy: prod" in bot.messages_to("admin2"))
            assert "admin1 set deploy: prod" in bot.messages_to("admin2")
            # once approved it is gone
            assert await bot.send("root1", "approve 1") == [
                "no approval #1 waiting (see approvals)"
            ]
            # approvals are audited as commands too
            assert row_of(bot, "approve")["user"] == "root1"

    run(go())


def test_deny_and_expiry_tell_the_sender_and_are_audited(tmp_path):
    async def go():
        async with running_bot(tmp_path, Risky()) as bot:
            clock = bot.app.safety.gate.clock = Clock()
            await bot.send("admin1", "deploy prod")
            assert await bot.send("root1", "deny 1") == ["denied #1: deploy prod"]
            assert bot.messages_to("admin1")[-1] == "denied by root1: deploy prod (not run)"
            assert row_of(bot, "deploy")["by"] == "approval denied by root1"
            assert "deployed prod" not in bot.messages_to("admin1")

            await bot.send("admin1", "deploy staging")  # #2
            clock.now += 599
            bot.app.safety.gate.sweep()
            assert await bot.send("admin2", "approvals") == [
                "waiting for approval:\n#2 admin1: deploy staging (1 s left)"
            ]
            clock.now += 2
            bot.app.safety.gate.sweep()
            await bot.settle()
            assert bot.messages_to("admin1")[-1] == (
                "expired: approval #2 for deploy staging (10 min)"
            )
            assert await bot.send("admin2", "approve 2") == [
                "no approval #2 waiting (see approvals)"
            ]
            assert row_of(bot, "deploy")["by"] == "approval expired"
            assert row_of(bot, "deploy")["decision"] == "denied"

            await bot.send("admin1", "deploy again")  # #3: the sender may withdraw it
            got = await bot.send("admin1", "deny 3")
            assert got == ["denied by admin1: deploy again (not run)", "denied #3: deploy again"]
            assert row_of(bot, "deploy")["by"] == "approval denied by admin1"
            assert await bot.send("admin2", "deny 3") == ["no approval #3 waiting (see approvals)"]

    run(go())


def test_confirm_then_approve_and_no_approver_and_the_timeout_setting(tmp_path):
    async def go():
        config = {"bot": {"approval_timeout": "30s"}}
        async with running_bot(tmp_path, Risky(), config=config) as bot:
            assert await bot.send("admin1", "nuke") == ["send yes within 60 s to run nuke"]
            assert await bot.send("admin1", "yes") == [
                "waiting for approval #1 (root1, admin2; 30 s)"
            ]
            assert await bot.send("admin2", "approve 1") == ["approved #1: nuke runs now"]
            await until(lambda: "nuked" in bot.messages_to("admin1"))
            assert row_of(bot, "nuke")["by"] == "approved by admin2"

    run(go())

    async def alone():
        users = [("solo", "root"), ("helper", "user")]
        async with running_bot(tmp_path / "2", Risky(), users=users) as bot:
            assert await bot.send("solo", "deploy x") == [
                "not run: deploy x needs another admin's approval"
            ]
            assert row_of(bot, "deploy")["by"] == "no approver"

    run(alone())


def test_quit_is_confirmed_and_audited(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            await bot.send("root1", "quit")
            assert await bot.send("root1", "yes") == ["stopping: pending messages are sent first"]
            await bot.settle()
            row = row_of(bot, "quit")
            assert (row["by"], row["outcome"], row["user"]) == ("confirmed", "ok", "root1")

    run(go())


JOB = """
import time
from lcbot import job

j = job.connect("trainer")

@j.command("deploy", kind="set", pri="admin", approve=True, help="ship a model")
def deploy(ctx):
    return f"shipped {ctx.value}"

@j.command("purge", pri="admin", confirm=True)
def purge(ctx):
    return "purged"

while True:
    time.sleep(0.1)
"""


def test_a_job_command_that_needs_approval_and_one_that_asks_to_confirm(tmp_path):
    import subprocess

    async def go():
        async with running_bot(tmp_path, Risky()) as bot:
            script = tmp_path / "trainer.py"
            script.write_text(textwrap.dedent(JOB))
            env = child_env(LCBOT_CONFIG=str(bot.app.config.path))
            proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env)
            try:
                await until(lambda: bot.app.registry.get("trainer.purge") is not None, 20)
                command = bot.app.registry.get("trainer.deploy")
                assert command.approve and not command.confirm
                assert await bot.send("admin1", "trainer deploy v2") == [
                    "waiting for approval #1 (root1, admin2; 10 min)"
                ]
                got = await bot.send("admin2", "approve 1")
                assert got[0] == "approved #1: trainer.deploy v2 runs now"
                await until(lambda: "shipped v2" in bot.messages_to("admin1"))
                assert await bot.send("admin1", "trainer purge") == [
                    "send yes within 60 s to run trainer.purge"
                ]
                assert await bot.send("admin1", "yes") == ["purged"]
                assert row_of(bot, "trainer.deploy")["by"] == "approved by admin2"
                assert row_of(bot, "trainer.purge")["by"] == "confirmed"
            finally:
                proc.kill()
                proc.wait(10)

    run(go())
