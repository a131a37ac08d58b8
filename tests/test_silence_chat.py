"""Silences from chat on a real App: ``silence MATCHER… DURATION COMMENT`` next to the key
silences, ``silences``, ``unsilence ID|KEY``; matching alerts are recorded ``silenced``
with the silence's id and not sent, the others are sent."""

from __future__ import annotations

import asyncio
import re

from tests.engine import running_bot


def run(coro):
    return asyncio.run(coro)


DB1 = {"host": "db1", "alertname": "DiskFull"}


def test_silence_by_matchers_from_chat(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            refused = await bot.send("user1", 'silence host=db1 alertname=~"Disk.*" 2h x')
            assert refused == ["not allowed: silence"]
            (made,) = await bot.send(
                "admin1", 'silence host=db1 alertname=~"Disk.*" 2h maintenance window'
            )
            found = re.fullmatch(
                r'silenced host="db1" alertname=~"Disk\.\*" for 2h \(id ([0-9a-f]{6})\)', made
            )
            assert found, made
            sid = found.group(1)
            assert await bot.send("admin1", "silence disk:/ 1h") == ["silenced disk:/ for 1h"]

            (listing,) = await bot.send("admin2", "silences")
            head, by_matchers, by_key = listing.split("\n")
            assert head == "silences:"
            assert by_matchers.startswith(f'{sid} host="db1" alertname=~"Disk.*" — ')
            assert by_matchers.endswith("left (by admin1: maintenance window)")
            assert by_key.startswith("disk:/ — ") and by_key.endswith("left (by admin1)")

            silenced = await bot.alert("disk full", level="critical", labels=DB1)
            assert bot.outcome(silenced) == {"state": "silenced", "silence": sid}
            other = await bot.alert("db2 disk", level="critical", labels={**DB1, "host": "db2"})
            load = await bot.alert("db1 load", level="critical", labels={"host": "db1"})
            keyed = await bot.alert("root fs", level="critical", key="disk:/")
            assert bot.outcome(other)["state"] == "delivered"
            assert bot.outcome(load)["state"] == "delivered"
            assert bot.outcome(keyed) == {"state": "silenced"}
            assert not [line for line in bot.lines("user1") if "disk full" in line]
            assert [line for line in bot.lines("user1") if "db2 disk" in line]

            assert await bot.send("admin2", f"unsilence {sid}") == [
                f'unsilenced {sid} (host="db1" alertname=~"Disk.*")'
            ]
            assert await bot.send("admin2", f"unsilence {sid}") == [f"{sid} was not silenced"]
            assert await bot.send("admin2", "unsilence disk:/") == ["unsilenced disk:/"]
            assert await bot.send("admin2", "silences") == ["no active silences"]
            again = await bot.alert("disk full again", level="critical", labels=DB1)
            assert bot.outcome(again)["state"] == "delivered"

    run(go())


def test_bad_matchers_get_one_clear_line_and_change_nothing(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            cases = {
                'silence host=~"(a+)+" 1h x': "regex in matcher host=~",
                'silence host=~"db[" 1h x': "bad regex in matcher host=~",
                'silence host="db1 1h x': "double quote",
                "silence host=db1": "give a duration after the matchers",
                "silence host=db1 forever": "'forever' is not a duration",
                "silence host=db1 0s": "",
            }
            for command, part in cases.items():
                (reply,) = await bot.send("admin1", command)
                assert reply.startswith("silence failed: ") and "\n" not in reply, reply
                assert part in reply, reply
            assert await bot.send("admin1", "silences") == ["no active silences"]

    run(go())


def test_a_matcher_silence_survives_a_restart(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            (made,) = await bot.send("admin1", "silence host=db1 1h upgrade")
            sid = made.rsplit(" ", 1)[1].rstrip(")")
        async with running_bot(tmp_path) as bot:
            silenced = await bot.alert("disk full", level="critical", labels=DB1)
            assert bot.outcome(silenced) == {"state": "silenced", "silence": sid}

    run(go())
