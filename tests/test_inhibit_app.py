"""Inhibition through a real App: ``[[alerts.inhibit]]`` in lcbot.toml, a firing source
inhibits matching targets with equal labels, a resolved one stops, a restart keeps it."""

from __future__ import annotations

import asyncio

from tests.engine import running_bot

RULES = {
    "alerts": {
        "inhibit": [
            {
                "source_matchers": ['alertname="HostDown"'],
                "target_matchers": ['alertname=~"Disk.*"'],
                "equal": ["host"],
            }
        ]
    }
}
DOWN = {"alertname": "HostDown", "host": "db1"}


def disk(host: str) -> dict[str, str]:
    return {"alertname": "DiskFull", "host": host}


def test_host_down_inhibits_its_disk_alerts_until_resolved_and_across_a_restart(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=RULES) as bot:
            source = await bot.alert("db1 down", level="critical", labels=DOWN)
            assert bot.outcome(source)["state"] == "delivered"
            target = await bot.alert("db1 disk", level="critical", labels=disk("db1"))
            other = await bot.alert("db2 disk", level="critical", labels=disk("db2"))
            outcome = bot.outcome(target)
            assert outcome["state"] == "inhibited"
            assert outcome["inhibited_by"] == "alertname=HostDown host=db1"
            assert bot.outcome(other)["state"] == "delivered"
            assert not [x for x in bot.lines("user1") if "db1 disk" in x]
        async with running_bot(tmp_path, config=RULES) as bot:  # the source still fires
            target = await bot.alert("db1 disk 2", level="critical", labels=disk("db1"))
            assert bot.outcome(target)["state"] == "inhibited"
            await bot.alert("db1 up", level="critical", labels=DOWN, resolved=True)
            after = await bot.alert("db1 disk 3", level="critical", labels=disk("db1"))
            assert bot.outcome(after)["state"] == "delivered"
        async with running_bot(tmp_path, config=RULES) as bot:  # resolved stays resolved
            after = await bot.alert("db1 disk 4", level="critical", labels=disk("db1"))
            assert bot.outcome(after)["state"] == "delivered"
            rows = bot.app.db.conn.execute("SELECT count(*) FROM inhibit_sources").fetchall()
            assert rows == [(0,)]

    asyncio.run(go())
