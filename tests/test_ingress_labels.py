"""Labels over real HTTP: ``labels`` in ``POST /alert`` (400 naming the field when bad) and
every label of an Alertmanager webhook alert, stored and shown with the message."""

from __future__ import annotations

import asyncio
import json

from tests.engine import running_bot
from tests.test_ingress import alert_row, am_alert, am_payload, client, ingress, settle, stored


def labels_of(bot, alert_id: int) -> dict:
    row = bot.app.db.conn.execute("SELECT labels FROM alerts WHERE id = ?", (alert_id,))
    (text,) = row.fetchone()
    return json.loads(text or "{}")


def test_post_alert_labels_are_stored_and_shown(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post(
                "/alert",
                {"text": "disk 97%", "level": "critical", "labels": {"host": "db1", "team": "web"}},
            )
            assert reply.status == 202, reply.body
            (alert_id,) = reply.json()["ids"]
            await settle(bot)
            assert labels_of(bot, alert_id) == {"host": "db1", "team": "web"}
            assert alert_row(bot, alert_id)["state"] == "delivered"
            assert bot.lines("user1") == ["CRITICAL disk 97% [host=db1 team=web]"]

    asyncio.run(go())


def test_post_alert_bad_labels_are_400_naming_the_field_and_store_nothing(tmp_path):
    bad = [
        {"host": 3},  # not text
        {"bad-name": "x"},  # not a label name
        ["host=db1"],  # not an object
    ]

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            for labels in bad:
                reply = await http.post("/alert", {"text": "x", "labels": labels})
                assert reply.status == 400, (labels, reply.body)
                assert "labels" in reply.json()["error"], reply.body
            assert stored(bot) == 0

    asyncio.run(go())


def test_alertmanager_alerts_keep_all_their_labels(tmp_path):
    payload = am_payload(
        am_alert("DiskFull", severity="critical", instance="db1:9100", mount="/var")
    )

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post("/alertmanager", payload)
            assert reply.status == 202, reply.body
            (alert_id,) = reply.json()["ids"]
            await settle(bot)
            labels = labels_of(bot, alert_id)
            assert labels == {
                "alertname": "DiskFull",
                "instance": "db1:9100",
                "job": "node",
                "mount": "/var",
                "severity": "critical",
            }

    asyncio.run(go())
