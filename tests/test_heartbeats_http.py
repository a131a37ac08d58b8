"""``POST /heartbeat/KEY`` on the HTTP ingress: real HTTP over 127.0.0.1 to an in-process
bot (``tests/engine.py``), with the helpers of ``tests/test_ingress.py``."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.engine import running_bot
from tests.test_ingress import BAD_AUTH, client, ingress, run


def beats(bot) -> list[tuple]:
    return bot.app.db.conn.execute(
        "SELECT key, every, grace, level, source FROM heartbeats ORDER BY key"
    ).fetchall()


def test_a_beat_from_the_query_or_a_json_body_is_stored(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            before = time.time()
            reply = await http.post("/heartbeat/nightly-backup?every=1h&grace=10m")
            assert reply.status == 200, reply.body
            answer = reply.json()
            assert {k: answer[k] for k in ("key", "every", "grace", "level")} == {
                "key": "nightly-backup",
                "every": 3600.0,
                "grace": 600.0,
                "level": "warning",
            }
            assert before + 4200 <= answer["due"] <= time.time() + 4200
            reply = await http.post("/heartbeat/db.dump", {"every": 90, "level": "critical"})
            assert reply.status == 200, reply.body
            reply = await http.post("/heartbeat/mixed?level=info", {"every": "2m", "grace": 0})
            assert reply.status == 200, reply.body
            assert beats(bot) == [
                ("db.dump", 90.0, 0.0, "critical", "http"),
                ("mixed", 120.0, 0.0, "info", "http"),
                ("nightly-backup", 3600.0, 600.0, "warning", "http"),
            ]
            assert {b.key for b in bot.app.heartbeats.listing()} == {
                "db.dump",
                "mixed",
                "nightly-backup",
            }  # the listener woke the bot: seen at once

    run(go())


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/heartbeat/k", None, "field 'every' is required (e.g. ?every=1h)"),
        ("/heartbeat/k?every=soon", None, "field 'every': 'soon' is not a duration"),
        ("/heartbeat/k?every=0", None, "field 'every': a duration must be longer than zero"),
        ("/heartbeat/k?every=1h&grace=-5m", None, "field 'grace': '-5m' is not a duration"),
        ("/heartbeat/k?every=400d", None, "field 'every': a duration must be at most 366d"),
        ("/heartbeat/k?every=1h&every=2h", None, "field 'every' given twice"),
        ("/heartbeat/k?every=1h", {"every": 60}, "field 'every' given twice"),
        ("/heartbeat/k?every=1h&colour=red", None, "unknown field 'colour'"),
        ("/heartbeat/k?every=1h&level=loud", None, "field 'level': unknown level 'loud'"),
        ("/heartbeat/k", {"every": -1}, "field 'every': must be above zero"),
        ("/heartbeat/k", {"every": True}, "field 'every' must be a duration"),
        ("/heartbeat/k", {"every": [1]}, "field 'every' must be a duration"),
        ("/heartbeat/k", {"every": 60, "grace": None}, "field 'grace' must be a duration"),
        ("/heartbeat/k", {"every": 60, "level": 3}, "field 'level': unknown level 3"),
        ("/heartbeat/k", [60], "the body must be a JSON object (or empty)"),
        ("/heartbeat/a%20b?every=1h", None, "the path's KEY: 'a b' is not a heartbeat key"),
        ("/heartbeat/-x?every=1h", None, "the path's KEY: '-x' is not a heartbeat key"),
        (f"/heartbeat/{'k' * 101}?every=1h", None, "is not a heartbeat key"),
    ],
)
def test_bad_input_is_400_with_a_clear_message_and_stores_nothing(tmp_path, path, body, message):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post(path, body)
            assert reply.status == 400, reply.body
            assert message in reply.json()["error"], reply.json()
            reply = await http.post("/heartbeat/k", data=b"{not json")
            assert reply.status == 400 and "malformed JSON" in reply.json()["error"]
            assert beats(bot) == []

    run(go())


def test_heartbeat_needs_the_token_and_post(tmp_path, token):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot, token) as http:
            for headers in BAD_AUTH:
                reply = await http.post("/heartbeat/k?every=1h", headers=headers)
                assert (reply.status, reply.body) == (401, b""), headers
            assert beats(bot) == []
            assert (await http.get("/heartbeat/k?every=1h")).status == 405
            assert (await http.post("/heartbeat/a/b?every=1h")).status == 404  # no slash
            assert (await http.post("/heartbeat/k?every=1h")).status == 200
            assert [b[0] for b in beats(bot)] == ["k"]

    run(go())


def test_late_over_http_then_back(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post("/heartbeat/cron?every=1s&level=critical")
            assert reply.status == 200, reply.body
            deadline = time.monotonic() + 10
            while not bot.lines("user1"):  # the bot's own deadline check, on its loop
                assert time.monotonic() < deadline, "no late alert"
                await asyncio.sleep(0.05)
                await bot.app.drain(1)
            (late,) = bot.lines("user1")
            assert late.startswith("CRITICAL cron: no heartbeat for ")
            assert late.endswith(" (expected every 1s)")
            assert (await http.post("/heartbeat/cron", {"every": 3600})).status == 200
            while len(bot.lines("user1")) < 2:
                assert time.monotonic() < deadline, "no resolve"
                await asyncio.sleep(0.05)
                await bot.app.drain(1)
            assert bot.lines("user1")[1].startswith("RESOLVED cron: heartbeat back after ")

    run(go())
