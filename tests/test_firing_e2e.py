"""Firing alerts end to end: chat ``alerts`` / ``ack`` / ``unack`` / ``resolve`` on a real
bot (the Harness), an escalation across a restart of the App on the same SQLite file, and
``lcbot alerts firing --json`` as a real subprocess while the bot runs."""

from __future__ import annotations

import asyncio

from lcbot import hookimpl
from lcbot.testing import Harness
from tests.engine import USERS
from tests.procs import lcbot_json

M = 60.0
T0 = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def run(coro):
    return asyncio.run(coro)


class Labeller:
    """A hook giving alerts labels by key (``bot.alert`` takes no labels yet)."""

    @hookimpl
    def on_alert(self, alert):
        if alert.key in ("load", "disk:/"):
            alert.labels = {"host": "db1"}


def test_chat_ack_tells_the_others_unack_and_resolve(tmp_path):
    async def go():
        async with Harness(tmp_path, [Labeller()], users=USERS) as bot:
            assert await bot.send("user1", "alerts") == ["nothing is firing"]
            await bot.alert("disk 97%", level="critical", title="DiskFull", key="disk:/")
            await bot.alert("load 9", level="warning", key="load")
            [listing] = await bot.send("user1", "alerts")
            lines = listing.split("\n")
            assert lines[0] == "2 firing:"
            assert (
                lines[1].startswith("#2 WARNING load 9 · ") and " · host=db1 · unacked" in lines[1]
            )
            assert lines[2].startswith("#1 CRITICAL DiskFull: disk 97% · ")
            assert await bot.send("user1", "ack 1") == [
                "acknowledged #1 DiskFull; re-notification stopped"
            ]
            for other in ("root1", "admin1", "admin2"):
                assert bot.messages_to(other)[-1] == "user1 acknowledged #1 DiskFull"
            assert "user1 acknowledged" not in " ".join(bot.messages_to("user1"))
            [listing] = await bot.send("admin1", "alerts")
            assert "acked by user1" in listing.split("\n")[2]
            assert await bot.send("admin1", "ack disk:/") == [
                "#1 DiskFull was acknowledged by user1 already"
            ]
            assert await bot.send("user1", "unack #1") == ["#1 DiskFull is unacknowledged again"]
            assert bot.messages_to("root1")[-1] == (
                "user1 un-acknowledged #1 DiskFull: re-notification resumes"
            )
            assert await bot.send("user1", "resolve 1") != ["resolved #1 DiskFull"]  # admins only
            assert await bot.send("admin1", "resolve 1") == [
                "resolved #1 DiskFull; its recipients were told"
            ]
            assert bot.messages_to("user1")[-1] == "RESOLVED #1 DiskFull (resolved by admin1)"
            assert await bot.send("admin1", "ack 1") == [
                "ack failed: nothing firing as '1'; send alerts for the list"
            ]
            await bot.alert("load ok", level="warning", key="load", resolved=True)
            assert bot.messages_to("root1")[-1] == "RESOLVED load ok [host=db1]"  # as before
            assert await bot.send("user1", "alerts") == ["nothing is firing"]

    run(go())


def test_restart_in_the_middle_of_an_escalation(tmp_path):
    """Critical alerts reach root1; escalation admin1 then every admin. The App stops
    after step 1; a new App on the same file takes step 2 on time and repeats nothing."""
    config = {
        "alerts": {
            "routes": {"critical": "root"},
            "renotify": "off",
            "escalation": ["admin1", "admin"],
        }
    }
    clock = Clock()

    def escalated(bot, user: str) -> list[str]:
        return [t for t in bot.messages_to(user) if "escalated to you" in t]

    async def go():
        first = Harness(tmp_path, users=USERS, config=config)
        first.app.router.clock = clock
        await first.start()
        await first.alert("db down", level="critical", key="db")
        clock.now = T0 + 29 * M
        first.app.router.escalation.tick()
        await first.settle()
        assert escalated(first, "admin1") == []
        clock.now = T0 + 30 * M
        first.app.router.escalation.tick()
        await first.settle()
        assert escalated(first, "admin1") == [
            "CRITICAL #1 db down (escalated to you: unacknowledged for 30m; ack 1 to take it)"
        ]
        assert first.messages_to("root1")[-1] == "#1 db down escalated to admin1"
        await first.stop()

        clock.now = T0 + 31 * M
        second = Harness(tmp_path, users=USERS, toml=first.app.config.path)
        second.app.router.clock = clock
        await second.start()  # ticks at start: nothing is due
        await second.settle()
        assert len(escalated(second, "admin1")) == 1 and escalated(second, "admin2") == []
        clock.now = T0 + 60 * M
        second.app.router.escalation.tick()
        await second.settle()
        assert escalated(second, "admin2") == [
            "CRITICAL #1 db down (escalated to you: unacknowledged for 1h; ack 1 to take it)"
        ]
        assert len(escalated(second, "admin1")) == 1  # step 1 was not repeated
        assert second.messages_to("admin1")[-1] == "#1 db down escalated to admin2"
        clock.now = T0 + 600 * M
        second.app.router.escalation.tick()
        await second.settle()
        assert len(escalated(second, "admin2")) == 1  # the last step was taken
        await second.stop()

    run(go())


def test_cli_alerts_firing_json_while_the_bot_runs(tmp_path):
    async def go():
        async with Harness(tmp_path, [Labeller()], users=USERS) as bot:
            await bot.alert("disk 97%", level="critical", key="disk:/")
            await bot.alert("no identity", level="critical")  # no key, no labels: not tracked
            await bot.send("admin1", "ack 1")
            await bot.settle()
            items = await asyncio.to_thread(lcbot_json, tmp_path, "alerts", "firing")
            assert len(items) == 1
            [item] = items
            assert (item["id"], item["text"], item["level"]) == (1, "disk 97%", "critical")
            assert item["labels"] == {"host": "db1"} and item["acked_by"] == "admin1"
            assert set(item["recipients"]) == {"root1", "admin1", "admin2", "user1"}

    run(go())
