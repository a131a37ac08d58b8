"""Bad input over HTTP never fails a batch, never answers 500, and never shows a Python
repr: every Alertmanager entry becomes a storable alert; text made of invisible
characters is empty (``make_alert``). Real HTTP on 127.0.0.1 against an in-process bot."""

from __future__ import annotations

import gzip
import json
import logging
import random
from typing import Any

import pytest

from lcbot.alerts import InvalidAlert, make_alert
from tests.engine import running_bot
from tests.test_ingress import (
    ADMINS,
    GOOD_ENTRY,
    alert_row,
    am_alert,
    am_payload,
    client,
    ingress,
    run,
    settle,
    stored,
)

GOOD_LINE = "CRITICAL Good: good — instance=web-1:9100, job=node"
INVISIBLE = "\u200b\ufeff \u2060\u00ad\u200d\t\u3164"  # zero-width, BOM, word joiner, …
FALLBACK = "firing Alertmanager alert without a name, summary or labels"


def entry(**changes: Any) -> dict:
    """An entry like Alertmanager's ("Odd" on db-1, no fingerprint) with ``changes``."""
    base = am_alert("Odd", severity="warning", instance="db-1", summary="odd", fingerprint=None)
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}  # ...: left out


# (id, the entry after GOOD_ENTRY, the stored (title, text, level, resolved, key))
ENTRIES: list[tuple[str, Any, tuple]] = [
    # the issue's case: blank alertname and summary → the labels are the text
    (
        "blank name and summary",
        entry(labels={"alertname": " ", "instance": "db-1"}, annotations={"summary": " \n"}),
        (None, "instance=db-1", "warning", 0, "alert,instance=db-1"),
    ),
    (
        "empty alertname, no other labels",
        entry(labels={"alertname": ""}, annotations={}),
        (None, FALLBACK, "warning", 0, "alert"),
    ),
    (
        "invisible alertname and summary",
        entry(labels={"alertname": INVISIBLE, "job": "x"}, annotations={"summary": INVISIBLE}),
        (None, "job=x", "warning", 0, "alert,job=x"),
    ),
    (
        "no labels, resolved",
        entry(labels=None, annotations=None, status="resolved"),
        (None, FALLBACK.replace("firing", "resolved"), "warning", 1, "alert"),
    ),
    (
        "labels left out",
        entry(labels=..., annotations=..., status=...),
        (None, FALLBACK, "warning", 0, "alert"),
    ),
    ("status pending", entry(status="pending"), ("Odd", None, "warning", 0, None)),
    ("status null", entry(status=None), ("Odd", None, "warning", 0, None)),
    ("status a number", entry(status=1), ("Odd", None, "warning", 0, None)),
    ("status RESOLVED", entry(status="RESOLVED"), ("Odd", None, "warning", 0, None)),
    (
        "non-text label values",
        entry(
            labels={
                "alertname": "Odd",
                "port": 9100,
                "up": True,
                "tags": ["a", "b"],
                "gone": None,
                "meta": {"z": 1, "a": 2},
            }
        ),
        (
            "Odd",
            'odd — meta={"a":2,"z":1}, port=9100, tags=["a","b"], up=true',
            "warning",
            0,
            'Odd,meta={"a":2,"z":1},port=9100,tags=["a","b"],up=true',
        ),
    ),
    (
        "labels a list",
        entry(labels=["a", 1]),
        (None, 'odd — labels=["a",1]', "warning", 0, 'alert,labels=["a",1]'),
    ),
    (
        "severity a number",
        entry(labels={"alertname": "Odd", "severity": 2}),
        ("Odd", "odd", "warning", 0, "Odd,severity=2"),
    ),
    (
        "annotations a list",
        entry(annotations=["summary"]),
        ("Odd", "instance=db-1, job=node", "warning", 0, None),
    ),
    (
        "annotations a text",
        entry(annotations="summary"),
        ("Odd", "instance=db-1, job=node", "warning", 0, None),
    ),
    (
        "summary a number: the description is the text",
        entry(annotations={"summary": 5, "description": "disk"}),
        ("Odd", "disk — instance=db-1, job=node", "warning", 0, None),
    ),
    (
        "summary an object, description a list: the labels are the text",
        entry(annotations={"summary": {"a": 1}, "description": ["x"]}),
        ("Odd", "instance=db-1, job=node", "warning", 0, None),
    ),
    (
        "invisible summary: the description",
        entry(annotations={"summary": INVISIBLE, "description": "real"}),
        ("Odd", "real — instance=db-1, job=node", "warning", 0, None),
    ),
    (
        "fingerprint a number: the key from the labels",
        entry(fingerprint=42),
        ("Odd", None, "warning", 0, "Odd,instance=db-1,job=node,severity=warning"),
    ),
    (
        "fingerprint an object",
        entry(fingerprint={"f": 1}),
        ("Odd", None, "warning", 0, "Odd,instance=db-1,job=node,severity=warning"),
    ),
    (
        "fingerprint blank",
        entry(fingerprint=" \u200b"),
        ("Odd", None, "warning", 0, "Odd,instance=db-1,job=node,severity=warning"),
    ),
    (
        "a text, not an object",
        "not an alert",
        (None, 'unreadable Alertmanager alert: "not an alert"', "warning", 0, "alertmanager:"),
    ),
    ("null", None, (None, "unreadable Alertmanager alert: null", "warning", 0, "alertmanager:")),
    ("a number", 7, (None, "unreadable Alertmanager alert: 7", "warning", 0, "alertmanager:")),
    (
        "a list",
        [1, "x"],
        (None, 'unreadable Alertmanager alert: [1,"x"]', "warning", 0, "alertmanager:"),
    ),
]


@pytest.mark.parametrize(("odd", "expected"), [e[1:] for e in ENTRIES], ids=[e[0] for e in ENTRIES])
def test_a_bad_entry_never_fails_its_batch(tmp_path, odd, expected):
    """The good entry before it is kept, and the odd one is stored as an alert (202)."""
    title, text, level, resolved, key = expected

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post("/alertmanager", am_payload(GOOD_ENTRY, odd))
            assert reply.status == 202, reply.body
            good, row = (alert_row(bot, i) for i in reply.json()["ids"])
            assert (good["title"], good["key"]) == ("Good", "9009")
            assert (row["title"], row["level"], row["resolved"]) == (title, level, resolved)
            assert row["source"] == "alertmanager"
            if text is not None:
                assert row["text"] == text
            assert "{'" not in row["text"] and "['" not in row["text"]  # no Python repr
            if key is not None and key.endswith(":"):
                assert row["key"].startswith(key) and len(row["key"]) == len(key) + 16
            elif key is not None:
                assert row["key"] == key
            assert len(row["text"]) <= 4000 and (row["key"] is None or len(row["key"]) <= 200)
            await settle(bot)
            assert GOOD_LINE in bot.lines("user1")

    run(go())


def test_the_same_bad_entry_twice_is_deduplicated(tmp_path):
    """Alertmanager re-sends a group: a malformed entry keeps one key and pages once."""

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            for _ in range(2):
                reply = await http.post("/alertmanager", am_payload("not an alert"))
                assert reply.status == 202, reply.body
                await settle(bot)
            assert bot.lines("admin1") == ['WARNING unreadable Alertmanager alert: "not an alert"']

    run(go())


def test_the_issues_batch_keeps_its_first_alert_and_routes_both(tmp_path):
    """The second alert has a blank alertname and summary and no other labels: it used to
    fail the batch (the first alert lost, Alertmanager retrying for ever)."""
    first = am_alert("DiskFull", severity="critical", summary="disk full", fingerprint="d1")
    second = {"status": "firing", "labels": {"alertname": " "}, "annotations": {"summary": " "}}

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post("/alertmanager", am_payload(first, second))
            assert reply.status == 202, reply.body
            assert len(reply.json()["ids"]) == 2
            await settle(bot)
            full = "CRITICAL DiskFull: disk full — instance=web-1:9100, job=node"
            assert full in bot.lines("user1")
            for user in ADMINS:
                assert f"WARNING {FALLBACK}" in bot.lines(user)

    run(go())


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["null", "bool", "int", "float", "text", "odd text"]
    if depth < 3:
        kinds += ["list", "object"] * 2
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-(10**20), 10**20)
    if kind == "float":
        return rng.uniform(-1e9, 1e9)
    if kind == "text":
        return rng.choice(["", " ", "firing", "resolved", "alertname", "x" * 300, "日本"])
    if kind == "odd text":
        return "".join(
            rng.choice(["\u200b", "\ufeff", "\x00", "\n", "a", "\u202e", "é"]) for _ in range(5)
        )
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["status", "labels", "annotations", "fingerprint", "alertname", "summary",
            "description", "severity", "instance", "x"]  # fmt: skip
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def test_random_entries_are_all_stored(tmp_path):
    """Whatever the entries hold, a webhook with a list of them gets 202 and one alert each."""
    rng = random.Random(20240501)
    batches = [[random_json(rng) for _ in range(rng.randint(1, 8))] for _ in range(60)]
    huge = {"status": "firing", "labels": {"alertname": "Big" * 100, "blob": "x" * 10_000}}
    batches.append([huge, {"labels": {f"l{i}": "v" * 50 for i in range(100)}}])

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            total = 0
            for entries in batches:
                body = {"version": "4", "alerts": entries}
                reply = await http.post("/alertmanager", data=json.dumps(body).encode())
                assert reply.status == 202, (entries, reply.status, reply.body)
                assert len(reply.json()["ids"]) == len(entries)
                total += len(entries)
            assert stored(bot) == total
            rows = bot.app.db.conn.execute("SELECT text, title, key FROM alerts").fetchall()
            assert all(text.strip() for text, _, _ in rows)
            assert max(len(text) for text, _, _ in rows) == 4000  # the huge ones, cut
            assert max(len(title or "") for _, title, _ in rows) == 200
            assert max(len(key or "") for _, _, key in rows) <= 200

    run(go())


# --- make_alert: text that shows nothing is empty ------------------------------------------


@pytest.mark.parametrize(
    "text", ["\u200b", "\ufeff", "\u200b\u200c\u200d\u2060", INVISIBLE, "\x00\x01", "\u3164"]
)
def test_make_alert_refuses_invisible_text(text):
    with pytest.raises(InvalidAlert) as caught:
        make_alert(text)
    assert caught.value.field == "text"


def test_make_alert_drops_an_invisible_title_and_keeps_visible_text():
    alert = make_alert("disk full", title="\ufeff\u200b ", key=INVISIBLE)
    assert (alert.text, alert.title, alert.key) == ("disk full", None, None)
    assert make_alert("\u200bdisk").text == "\u200bdisk"  # something visible: kept as sent
    assert make_alert("日本", title="é").title == "é"


def test_bot_alert_and_http_refuse_invisible_text(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            with pytest.raises(ValueError):
                bot.app.bot("checker").alert("\u200b\ufeff")
            reply = await http.post("/alert", {"text": "\u200b\u2060"})
            assert reply.status == 400 and "'text'" in reply.json()["error"]
            reply = await http.post("/alert", {"text": "disk full", "title": "\u200b"})
            assert reply.status == 202, reply.body
            assert alert_row(bot, reply.json()["ids"][0])["title"] is None
            assert stored(bot) == 1

    run(go())


# --- no 500 for bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/alert", "/alertmanager"])
@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ({"Content-Encoding": "gzip"}, b"this is not gzip"),
        ({"Content-Encoding": "deflate"}, b"nor deflate"),
    ],
    ids=["not gzip", "not deflate"],
)
def test_undecodable_body_is_400_with_one_short_log_line(tmp_path, caplog, path, headers, data):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            with caplog.at_level(logging.DEBUG):
                reply = await http.post(path, data=data, headers=headers)
                assert reply.status == 400, (reply.status, reply.body)
                assert "malformed body" in reply.json()["error"]
                health = await http.get("/healthz")  # the listener carries on
                assert health.status == 200
            assert stored(bot) == 0
            zipped = gzip.compress(json.dumps({"text": "zipped"}).encode())
            reply = await http.post("/alert", data=zipped, headers={"Content-Encoding": "gzip"})
            assert reply.status == 202, reply.body  # a real gzip body is fine
            assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
            assert all(r.levelno < logging.ERROR for r in caplog.records)

    run(go())


def test_a_store_failure_mid_batch_is_a_logged_500_and_stores_nothing(tmp_path, caplog):
    """500 is for the bot's own faults: here the database refuses the second alert of a
    batch (a trigger). The batch is one transaction: the first alert is rolled back too."""
    boom = am_alert("Boom", severity="critical", summary="boom", fingerprint="b00m")

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            bot.app.db.conn.execute(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON alerts WHEN NEW.text LIKE 'boom%' "
                "BEGIN SELECT RAISE(ABORT, 'the disk is on fire'); END"
            )
            reply = await http.post("/alertmanager", am_payload(GOOD_ENTRY, boom))
            assert reply.status == 500
            assert reply.content_type == "application/json"
            assert "internal error" in reply.json()["error"]
            assert stored(bot) == 0
            reply = await http.post("/alertmanager", am_payload(GOOD_ENTRY))
            assert reply.status == 202, reply.body
            await settle(bot)
            assert bot.lines("user1") == [GOOD_LINE]

    run(go())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].name == "lcbot.ingress", errors
    assert "the disk is on fire" in caplog.text and "/alertmanager" in errors[0].getMessage()


def test_a_huge_batch_keeps_max_entries_and_counts_the_rest(tmp_path):
    """``{"alerts": [0, 0, …]}`` in 1 MiB would be ~500k alerts: at most MAX_ENTRIES are
    kept, and one more alert counts the others at the highest of their levels."""
    from lcbot.webhooks import MAX_ENTRIES

    kept = [am_alert(f"A{i}", severity="info", fingerprint=f"f{i}") for i in range(MAX_ENTRIES)]
    over = [0] * 400 + [am_alert("Late", severity="critical", fingerprint="late")]

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post("/alertmanager", am_payload(*kept, *over))
            assert reply.status == 202, reply.body
            ids = reply.json()["ids"]
            assert len(ids) == MAX_ENTRIES + 1 and stored(bot) == MAX_ENTRIES + 1
            assert alert_row(bot, ids[MAX_ENTRIES - 1])["key"] == f"f{MAX_ENTRIES - 1}"
            last = alert_row(bot, ids[-1])
            assert last["level"] == "critical" and last["title"] == "Alertmanager batch cut"
            assert last["text"].startswith("401 more alerts of this Alertmanager webhook")
            assert last["key"].startswith("alertmanager-overflow:")

    run(go())
