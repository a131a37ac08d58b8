"""HTTP alert ingress (``lcbot/ingress.py``): real HTTP over 127.0.0.1.

Most tests talk to the listener of an in-process App (``tests/engine.py``) with an aiohttp
client on the test's own event loop; the end-to-end ones run ``lcbot run --transport
console`` as a process and post with urllib. Every wait is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lcbot import hookimpl
from lcbot.errors import ConfigError
from lcbot.testing import Harness
from tests.conftest import INGRESS_TOKEN, INGRESS_TOKEN_ENV
from tests.engine import running_bot
from tests.procs import WAIT, bots, lcbot, make_project, query, wait_until

TOKEN_ENV, TOKEN = INGRESS_TOKEN_ENV, INGRESS_TOKEN  # the ``token`` fixture sets it
EVERYONE = {"root1", "admin1", "admin2", "user1"}
ADMINS = {"root1", "admin1", "admin2"}
ROOT = {"root1"}
MAX_BODY = 1024 * 1024  # 1 MiB, as documented (not read from lcbot.ingress)
SETTLE = 10.0  # seconds: the most routing + sending of one batch may take


def run(coro):
    return asyncio.run(coro)


def ingress(**extra: Any) -> dict:
    """``[ingress]`` on a free loopback port (and ``extra`` keys)."""
    return {"ingress": {"enabled": True, "listen": "127.0.0.1:0", **extra}}


# --- helpers ----------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One HTTP client of a running bot's listener."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = token
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        timeout = aiohttp.ClientTimeout(total=SETTLE)
        self.session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        assert self.session is not None
        sent = dict(headers or {})
        if self.token is not None and headers is None:
            sent["Authorization"] = f"Bearer {self.token}"
        if data is None and body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.base + path, data=data, headers=sent) as r:
            return Reply(r.status, await r.read(), r.content_type)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.request("POST", path, body, **kw)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)


def client(bot, token: str | None = None) -> Client:
    assert bot.app.ingress is not None and bot.app.ingress.port
    return Client(bot.app.ingress.port, token)


def stored(bot) -> int:
    """Rows in the alerts table."""
    return bot.app.db.conn.execute("SELECT count(*) FROM alerts").fetchone()[0]


def alert_row(bot, alert_id: int) -> dict:
    db = bot.app.db.conn
    row = db.execute(
        "SELECT text, level, title, key, resolved, source, state, outcome FROM alerts WHERE id = ?",
        (alert_id,),
    ).fetchone()
    assert row is not None, f"alert {alert_id} not stored"
    names = ("text", "level", "title", "key", "resolved", "source", "state", "outcome")
    out = dict(zip(names, row, strict=True))
    out["outcome"] = json.loads(out["outcome"] or "{}")
    return out


async def settle(bot, timeout: float = SETTLE) -> None:
    """Wait until the bot's own poller (woken by the ingress) has routed every stored alert
    and every queued message is sent."""
    db = bot.app.db.conn
    deadline = time.monotonic() + timeout
    while db.execute("SELECT count(*) FROM alerts WHERE state = 'new'").fetchone()[0]:
        assert time.monotonic() < deadline, f"alerts not routed within {timeout}s"
        await asyncio.sleep(0.01)
    assert await bot.app.drain(timeout), "messages not sent in time"


def receivers(bot, text: str) -> set[str]:
    return {r for r, t in bot.transport.sent if text in t.split("\n")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def raw_http(port: int, request: bytes) -> bytes:
    """Send raw bytes (for what no client library will send); the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), SETTLE)
    finally:
        writer.close()


# --- Alertmanager payloads ----------------------------------------------------------------------


def am_alert(
    name: str,
    status: str = "firing",
    *,
    severity: str | None = "warning",
    instance: str = "web-1:9100",
    job: str = "node",
    summary: str | None = None,
    description: str | None = None,
    fingerprint: str | None = "",
    **labels: str,
) -> dict:
    """One entry of ``alerts[]`` as Alertmanager sends it (``fingerprint=None``: left out)."""
    all_labels = {"alertname": name, "instance": instance, "job": job, **labels}
    if severity is not None:
        all_labels["severity"] = severity
    annotations = {}
    if summary is not None:
        annotations["summary"] = summary
    if description is not None:
        annotations["description"] = description
    entry = {
        "status": status,
        "labels": all_labels,
        "annotations": annotations,
        "startsAt": "2024-05-01T10:00:00.000Z",
        "endsAt": "2024-05-01T10:20:00.000Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr="
        + f"ALERTS%7Balertname%3D%22{name}%22%7D",
    }
    if fingerprint is not None:
        entry["fingerprint"] = fingerprint or f"{name}@{instance}".encode().hex()[:16]
    return entry


def am_payload(*alerts: dict) -> dict:
    """A complete version-4 webhook body around ``alerts``."""
    names = sorted(
        {
            a["labels"]["alertname"]
            for a in alerts
            if isinstance(a, dict) and isinstance(a.get("labels"), dict)
        }
    )
    firing = any(isinstance(a, dict) and a.get("status") == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}/{team="ops"}:{alertname=~"' + "|".join(names) + '"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "lcbot",
        "groupLabels": {"team": "ops"},
        "commonLabels": {"team": "ops"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


# --- 1. POST /alert -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "expected"),
    [("critical", EVERYONE), ("warning", ADMINS), ("info", ROOT), (None, ROOT)],
)
def test_post_alert_is_recorded_and_routed_by_level(tmp_path, level, expected):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            body = {"text": "disk /var 97% on db-1"}
            if level is not None:
                body["level"] = level
            reply = await http.post("/alert", body)
            assert reply.status == 202, reply.body
            assert reply.content_type == "application/json"
            (alert_id,) = reply.json()["ids"]
            assert reply.json() == {"ids": [alert_id]} and isinstance(alert_id, int)
            await settle(bot)
            shown = f"{(level or 'info').upper()} disk /var 97% on db-1"
            assert receivers(bot, shown) == expected
            for user in EVERYONE:  # exactly once to each recipient, nothing else
                assert bot.lines(user) == ([shown] if user in expected else [])
            row = alert_row(bot, alert_id)
            assert row["level"] == (level or "info")  # level defaults to info
            assert (row["text"], row["title"], row["key"]) == ("disk /var 97% on db-1", None, None)
            assert (row["resolved"], row["source"], row["state"]) == (0, "http", "delivered")
            assert set(row["outcome"]["to"]) == expected

    run(go())


def test_post_alert_with_title_key_and_resolved(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            first = await http.post(
                "/alert",
                {"text": "load 12.5", "level": "critical", "title": "web-1", "key": "load:web-1"},
            )
            again = await http.post(
                "/alert",
                {"text": "load 13.0", "level": "critical", "title": "web-1", "key": "load:web-1"},
            )
            done = await http.post(
                "/alert",
                {
                    "text": "load 0.7",
                    "level": "critical",
                    "title": "web-1",
                    "key": "load:web-1",
                    "resolved": True,
                },
            )
            assert [r.status for r in (first, again, done)] == [202, 202, 202]
            ids = [r.json()["ids"][0] for r in (first, again, done)]
            assert ids == sorted(set(ids))
            await settle(bot)
            assert bot.lines("user1") == ["CRITICAL web-1: load 12.5", "RESOLVED web-1: load 0.7"]
            states = [alert_row(bot, i)["state"] for i in ids]
            assert states == ["delivered", "deduplicated", "delivered"]
            assert alert_row(bot, ids[2])["resolved"] == 1
            assert alert_row(bot, ids[0])["key"] == "load:web-1"

    run(go())


# --- 2. POST /alertmanager --------------------------------------------------------------------


def test_alertmanager_firing_and_resolved_are_routed_by_severity(tmp_path):
    payload = am_payload(
        am_alert(
            "HighCPU",
            severity="critical",
            instance="web-1:9100",
            summary="CPU above 95% for 5m",
            description="web-1 has been pegged",
            fingerprint="c0ffee0000000001",
        ),
        am_alert(
            "DiskFull",
            "resolved",
            severity="warning",
            instance="db-1:9100",
            description="/var is 97% full",  # no summary: the description is the text
            fingerprint="d15cf011000000002",
        ),
        am_alert(
            "BackupLate",
            severity="info",
            instance="backup-1:9100",
            summary="nightly backup 2h late",
            fingerprint="bac0000000000003",
            team="ops",
        ),
    )

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post("/alertmanager", payload)
            assert reply.status == 202, reply.body
            ids = reply.json()["ids"]
            assert len(ids) == 3 and ids == sorted(set(ids))
            await settle(bot)

            cpu = "CRITICAL HighCPU: CPU above 95% for 5m — instance=web-1:9100, job=node"
            disk = "RESOLVED DiskFull: /var is 97% full — instance=db-1:9100, job=node"
            backup = (
                "INFO BackupLate: nightly backup 2h late — instance=backup-1:9100, job=node, "
                "team=ops"
            )
            assert receivers(bot, cpu) == EVERYONE  # critical → every user
            assert receivers(bot, disk) == ADMINS  # warning (resolved) → admins and root
            assert receivers(bot, backup) == ROOT  # info → root
            assert Counter(bot.lines("root1")) == Counter([cpu, disk, backup])
            assert bot.lines("user1") == [cpu]

            rows = [alert_row(bot, i) for i in ids]
            assert [(r["title"], r["level"], r["resolved"]) for r in rows] == [
                ("HighCPU", "critical", 0),
                ("DiskFull", "warning", 1),
                ("BackupLate", "info", 0),
            ]
            assert [r["key"] for r in rows] == [
                "c0ffee0000000001",
                "d15cf011000000002",
                "bac0000000000003",
            ]
            assert {r["source"] for r in rows} == {"alertmanager"}
            assert {r["state"] for r in rows} == {"delivered"}

    run(go())


def test_alertmanager_severity_mapping_and_keys_without_fingerprint(tmp_path):
    sections = ingress(severity={"page": "critical", "ticket": "info"})
    payload = am_payload(
        am_alert("Paged", severity="page", summary="paged", fingerprint="f1"),
        am_alert("Ticket", severity="ticket", summary="ticket", fingerprint="f2"),
        am_alert("Odd", severity="bogus", summary="odd", fingerprint="f3"),
        am_alert("Bare", severity=None, summary="bare", fingerprint="f4"),
        am_alert("Crit", severity="critical", summary="crit", fingerprint="f5"),
        am_alert("NoPrint", severity="critical", instance="db-2:9100", fingerprint=None),
    )

    async def go():
        async with running_bot(tmp_path, config=sections) as bot, client(bot) as http:
            reply = await http.post("/alertmanager", payload)
            assert reply.status == 202, reply.body
            rows = [alert_row(bot, i) for i in reply.json()["ids"]]
            assert [(r["title"], r["level"]) for r in rows] == [
                ("Paged", "critical"),  # custom mapping
                ("Ticket", "info"),
                ("Odd", "warning"),  # unknown severity → warning
                ("Bare", "warning"),  # missing severity → warning
                ("Crit", "critical"),  # the defaults stay
                ("NoPrint", "critical"),
            ]
            # no fingerprint: alertname plus the other labels, sorted
            assert rows[5]["key"] == "NoPrint,instance=db-2:9100,job=node,severity=critical"
            # no annotations: the labels are the text
            assert rows[5]["text"] == "instance=db-2:9100, job=node"
            await settle(bot)
            assert receivers(bot, "CRITICAL Paged: paged — instance=web-1:9100, job=node") == (
                EVERYONE
            )
            assert receivers(bot, "INFO Ticket: ticket — instance=web-1:9100, job=node") == ROOT
            assert receivers(bot, "WARNING Odd: odd — instance=web-1:9100, job=node") == ADMINS
            assert receivers(bot, "WARNING Bare: bare — instance=web-1:9100, job=node") == ADMINS
            assert receivers(bot, "CRITICAL NoPrint: instance=db-2:9100, job=node") == EVERYONE

    run(go())


def test_alertmanager_repeat_is_deduplicated_until_resolved(tmp_path):
    """Alertmanager re-sends a firing group every repeat_interval: one page per episode."""

    def firing() -> dict:
        return am_payload(
            am_alert("Down", severity="critical", summary="target down", fingerprint="abc123")
        )

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            ids = []
            for body in (firing(), firing()):
                reply = await http.post("/alertmanager", body)
                assert reply.status == 202, reply.body
                ids += reply.json()["ids"]
                await settle(bot)
            resolved = am_payload(
                am_alert(
                    "Down", "resolved", severity="critical", summary="back", fingerprint="abc123"
                )
            )
            reply = await http.post("/alertmanager", resolved)
            assert reply.status == 202, reply.body
            ids += reply.json()["ids"]
            await settle(bot)
            assert bot.lines("user1") == [
                "CRITICAL Down: target down — instance=web-1:9100, job=node",
                "RESOLVED Down: back — instance=web-1:9100, job=node",
            ]
            states = [alert_row(bot, i)["state"] for i in ids]
            assert states == ["delivered", "deduplicated", "delivered"]

    run(go())


# --- 3. GET /healthz --------------------------------------------------------------------------


def test_healthz_reports_transport_outbox_and_last_send(tmp_path):
    sections = {**ingress(), "ratelimit": {"max_attempts": 1}}  # one failed send: dead

    async def go():
        async with running_bot(tmp_path, config=sections) as bot, client(bot) as http:
            reply = await http.get("/healthz")
            assert reply.status == 200 and reply.content_type == "application/json"
            health = reply.json()
            assert health["transport"]["name"] == "memory"
            assert health["transport"]["ready"] is True
            assert health["outbox"] == {"pending": 0, "sent": 0, "dead": 0}
            assert health["last_sent"] is None

            before = time.time()
            assert (await http.post("/alert", {"text": "fire", "level": "critical"})).status == 202
            await settle(bot)
            health = (await http.get("/healthz")).json()
            assert health["outbox"] == {"pending": 0, "sent": 4, "dead": 0}
            assert before <= health["last_sent"] <= time.time()

            bot.transport.set_ready(False)  # e.g. WeChat logged out: messages wait
            assert (await http.post("/alert", {"text": "fyi"})).status == 202
            db = bot.app.db.conn
            deadline = time.monotonic() + SETTLE
            while db.execute("SELECT count(*) FROM outbox WHERE state='pending'").fetchone()[0] < 1:
                assert time.monotonic() < deadline, "info alert never queued"
                await asyncio.sleep(0.01)
            health = (await http.get("/healthz")).json()
            assert health["transport"]["ready"] is False
            assert health["outbox"] == {"pending": 1, "sent": 4, "dead": 0}

            bot.transport.set_ready(True)
            await settle(bot)
            bot.transport.fail_next = 1
            assert (await http.post("/alert", {"text": "lost"})).status == 202
            await settle(bot)
            health = (await http.get("/healthz")).json()
            assert health["transport"]["ready"] is True
            assert health["outbox"] == {"pending": 0, "sent": 5, "dead": 1}

    run(go())


# --- 4. authentication ------------------------------------------------------------------------

BAD_AUTH = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"bearer {TOKEN}"},
    {"Authorization": f"BEARER {TOKEN}"},
    {"Authorization": f"Bearer  {TOKEN}"},
    {"Authorization": f"Bearer\t{TOKEN}"},
    {"Authorization": f"Bearer {TOKEN.lower()}"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": TOKEN},
    {"Authorization": f"Token {TOKEN}"},
    {"Authorization": "Basic bHVjOnMzY3JldC1Ub2tlbl80Mg=="},
    {"X-Auth-Token": TOKEN},
]


def test_token_required_on_every_path(tmp_path, token):
    good_alert = {"text": "authorised", "level": "critical"}
    good_am = am_payload(am_alert("Auth", severity="critical", summary="am", fingerprint="a1"))

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot, token) as http:
            for headers in BAD_AUTH:
                for method, path, body in [
                    ("POST", "/alert", good_alert),
                    ("POST", "/alertmanager", good_am),
                    ("GET", "/healthz", None),
                    ("GET", "/no-such-path", None),  # nothing about the routes leaks
                ]:
                    reply = await http.request(method, path, body, headers=headers)
                    assert (reply.status, reply.body) == (401, b""), (headers, path)
            assert stored(bot) == 0  # nothing queued
            await settle(bot)
            assert bot.transport.sent == []

            reply = await http.post("/alert", good_alert)
            assert reply.status == 202, reply.body
            reply = await http.post("/alertmanager", good_am)
            assert reply.status == 202, reply.body
            health = await http.get("/healthz")
            assert health.status == 200 and health.json()["transport"]["name"] == "memory"
            assert (await http.get("/no-such-path")).status == 404
            assert stored(bot) == 2
            await settle(bot)
            assert bot.lines("user1") == [
                "CRITICAL authorised",
                "CRITICAL Auth: am — instance=web-1:9100, job=node",
            ]

    run(go())


def test_non_utf8_authorization_header_is_401(tmp_path, token):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot:
            port = bot.app.ingress.port
            body = b'{"text": "sneaky"}'
            answer = await raw_http(
                port,
                b"POST /alert HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                b"Authorization: Bearer \xff\xfe\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
            )
            assert stored(bot) == 0
            head, _, rest = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 401"), answer
            assert rest == b""

    run(go())


# --- 5. bad input -----------------------------------------------------------------------------

GOOD_ENTRY = am_alert("Good", severity="critical", summary="good", fingerprint="9009")

# (path, JSON body or raw bytes, words the 400 message must contain)
BAD_INPUT: list[tuple[str, Any, tuple[str, ...]]] = [
    ("/alert", b'{"text": "unterminated', ("malformed JSON",)),
    ("/alert", b"", ("malformed JSON",)),
    ("/alert", b"\xff\xfe{}", ("malformed JSON",)),
    ("/alert", b"text=hello", ("malformed JSON",)),
    ("/alert", ["text", "hello"], ("JSON object",)),
    ("/alert", "hello", ("JSON object",)),
    ("/alert", {}, ("'text'",)),
    ("/alert", {"level": "critical"}, ("'text'",)),
    ("/alert", {"text": ""}, ("'text'",)),
    ("/alert", {"text": "  \n\t "}, ("'text'",)),
    ("/alert", {"text": "\u200b\ufeff \u2060\u00ad"}, ("'text'",)),  # nothing visible
    ("/alert", {"text": 5}, ("'text'",)),
    ("/alert", {"text": ["a"]}, ("'text'",)),
    ("/alert", {"text": "x", "level": "fatal"}, ("'level'",)),
    ("/alert", {"text": "x", "level": "CRITICAL"}, ("'level'",)),
    ("/alert", {"text": "x", "level": 2}, ("'level'",)),
    ("/alert", {"text": "x", "resolved": "yes"}, ("'resolved'",)),
    ("/alert", {"text": "x", "resolved": 1}, ("'resolved'",)),
    ("/alert", {"text": "x", "title": 7}, ("'title'",)),
    ("/alert", {"text": "x", "key": {"k": "v"}}, ("'key'",)),
    ("/alert", {"text": "x", "severity": "critical"}, ("'severity'",)),
    ("/alert", {"text": "x", "Text": "y"}, ("'Text'",)),
    ("/alertmanager", b"{,}", ("malformed JSON",)),
    ("/alertmanager", [GOOD_ENTRY], ("JSON object",)),
    ("/alertmanager", {"version": "4"}, ("'alerts'",)),
    ("/alertmanager", am_payload(), ("'alerts'",)),
    ("/alertmanager", {"alerts": GOOD_ENTRY}, ("'alerts'",)),
    ("/alertmanager", {"alerts": None}, ("'alerts'",)),
    ("/alertmanager", "alerts", ("JSON object",)),
    # a bad *entry* never fails its batch: tests/test_ingress_entries.py
]


def test_bad_input_is_400_naming_the_field_and_queues_nothing(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            for path, body, words in BAD_INPUT:
                if isinstance(body, bytes):
                    reply = await http.post(path, data=body)
                else:
                    reply = await http.post(path, data=json.dumps(body).encode())
                case = f"{path} {body!r:.120}"
                assert reply.status == 400, (case, reply.status, reply.body)
                assert reply.content_type == "application/json", case
                message = reply.json()["error"]
                assert all(w in message for w in words), (case, message)
                assert stored(bot) == 0, case
            await settle(bot)
            assert bot.transport.sent == []

            # the listener still answers correctly
            reply = await http.post("/alert", {"text": "still alive", "level": "critical"})
            assert reply.status == 202, reply.body
            reply = await http.post("/alertmanager", am_payload(GOOD_ENTRY))
            assert reply.status == 202, reply.body
            assert stored(bot) == 2
            await settle(bot)
            assert bot.lines("user1") == [
                "CRITICAL still alive",
                "CRITICAL Good: good — instance=web-1:9100, job=node",
            ]

    run(go())


def test_body_size_limit_method_and_path(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            small = b'{"text": "boundary"}'
            exact = small + b" " * (MAX_BODY - len(small))  # valid JSON, exactly 1 MiB
            too_big = exact + b" "
            for path in ("/alert", "/alertmanager"):
                reply = await http.post(path, data=too_big)
                assert reply.status == 413, (path, reply.status, reply.body[:200])
                assert "larger than" in reply.json()["error"]
            huge_text = json.dumps({"text": "x" * (2 * MAX_BODY)}).encode()
            assert (await http.post("/alert", data=huge_text)).status == 413
            assert stored(bot) == 0

            for method, path, status in [
                ("GET", "/alert", 405),
                ("PUT", "/alert", 405),
                ("GET", "/alertmanager", 405),
                ("DELETE", "/healthz", 405),
                ("POST", "/healthz", 405),
                ("GET", "/", 404),
                ("POST", "/alerts", 404),
                ("POST", "/alert/extra", 404),
                ("GET", "/healthz/x", 404),
            ]:
                body = {"text": "wrong door"} if method in ("POST", "PUT") else None
                reply = await http.request(method, path, body)
                assert reply.status == status, (method, path, reply.status)
            assert stored(bot) == 0
            await settle(bot)
            assert bot.transport.sent == []

            reply = await http.post("/alert", data=exact)  # the limit itself is accepted
            assert reply.status == 202, reply.body[:200]
            assert (await http.get("/healthz")).status == 200
            await settle(bot)
            assert bot.lines("root1") == ["INFO boundary"]

    run(go())


# valid JSON whose text sqlite cannot store (lone surrogates)
UNENCODABLE = [("/alert", b'{"text": "disk \\ud800 full"}')]
# the same in an Alertmanager entry after a good one: stored with U+FFFD instead
UNENCODABLE_AM = (
    b'{"version": "4", "alerts": [' + json.dumps(GOOD_ENTRY).encode() + b", "
    b'{"status": "firing", "labels": {"alertname": "X", "instance": "a\\udfffb"}}]}'
)


def test_unencodable_alertmanager_entry_is_stored_with_replacement_characters(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post("/alertmanager", data=UNENCODABLE_AM)
            assert reply.status == 202, reply.body
            good, odd = (alert_row(bot, i) for i in reply.json()["ids"])
            assert good["title"] == "Good"
            assert (odd["title"], odd["text"]) == ("X", "instance=a\ufffdb")
            assert odd["key"] == "X,instance=a\ufffdb"
            await settle(bot)
            assert bot.lines("root1")[-1] == "WARNING X: instance=a\ufffdb"

    run(go())


@pytest.mark.parametrize(("path", "raw"), UNENCODABLE, ids=["alert"])
def test_store_failure_mid_request_stores_nothing(tmp_path, path, raw):
    """A refused request stores nothing, and the listener keeps working."""

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post(path, data=raw)
            assert reply.status != 202, reply.body
            assert stored(bot) == 0
            reply = await http.post("/alert", {"text": "after", "level": "critical"})
            assert reply.status == 202, reply.body
            await settle(bot)
            assert bot.lines("user1") == ["CRITICAL after"]

    run(go())


@pytest.mark.parametrize(("path", "raw"), UNENCODABLE, ids=["alert"])
def test_unencodable_text_is_400(tmp_path, path, raw):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post(path, data=raw)
            assert stored(bot) == 0
            assert reply.status == 400, (reply.status, reply.body)
            assert "field" in reply.json()["error"]

    run(go())


def test_deeply_nested_json_is_400(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot, client(bot) as http:
            reply = await http.post("/alert", data=b"[" * 100_000 + b"]" * 100_000)
            assert stored(bot) == 0
            assert (await http.get("/healthz")).status == 200  # the listener survives
            assert reply.status == 400, (reply.status, reply.body)

    run(go())


# --- 6. security at start ---------------------------------------------------------------------


async def refused_start(tmp_path: Path, sections: dict, *plugins: Any) -> ConfigError:
    """Build and start a bot that must refuse with ConfigError (when building or starting
    it). Returns the error."""
    with pytest.raises(ConfigError) as caught:
        bot = Harness(tmp_path, plugins, {"root1": "root"}, sections, builtins=False)
        await bot.start()
        await bot.stop()
    return caught.value


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "bot.example.com:0"])
def test_exposed_listener_without_token_refuses_to_start(tmp_path, listen):
    error = run(refused_start(tmp_path, ingress(listen=listen)))
    message = str(error)
    assert "reachable from the network" in message and f"${TOKEN_ENV}" in message


def test_exposed_listener_with_token_starts(tmp_path, token):
    async def go():
        sections = ingress(listen="0.0.0.0:0")
        async with running_bot(tmp_path, config=sections) as bot:
            async with client(bot, token) as http:
                assert (await http.get("/healthz")).status == 200
                assert (await http.post("/alert", {"text": "via any address"})).status == 202
            async with client(bot) as anonymous:
                assert (await anonymous.get("/healthz")).status == 401
            await settle(bot)
            assert bot.lines("root1") == ["INFO via any address"]

    run(go())


def test_ingress_disabled_by_default_and_stops_with_the_app(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            assert bot.app.ingress is None
        async with running_bot(tmp_path, config=ingress()) as bot:
            port = bot.app.ingress.port
            async with client(bot) as http:
                assert (await http.get("/healthz")).status == 200
        with pytest.raises(OSError):  # the port is closed once the app stopped
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()

    run(go())


class Lifecycle:
    def __init__(self) -> None:
        self.events: list[str] = []

    @hookimpl
    def lcbot_startup(self, bot):
        self.events.append("startup")

    @hookimpl
    def lcbot_shutdown(self, bot):
        self.events.append("shutdown")


def test_exposed_listener_is_refused_before_anything_starts(tmp_path):
    plugin = Lifecycle()
    run(refused_start(tmp_path, ingress(listen="0.0.0.0:0"), plugin))
    assert plugin.events == [], "lcbot_startup ran before the refusal"
    assert not (tmp_path / "data").exists(), "the data dir was touched before the refusal"


# --- 7. concurrency ---------------------------------------------------------------------------


def test_200_concurrent_posts_are_stored_and_routed_once_each(tmp_path):
    clients, per_client = 20, 10

    async def go():
        async with running_bot(tmp_path, users=[("root1", "root")], config=ingress()) as bot:

            async def one_client(c: int) -> list[tuple[str, int, Any]]:
                results = []
                async with client(bot) as http:
                    for i in range(per_client):
                        text = f"job {c:02d}-{i:02d} finished"
                        reply = await http.post("/alert", {"text": text, "level": "info"})
                        results.append((text, reply.status, reply.json()))
                return results

            batches = await asyncio.gather(*(one_client(c) for c in range(clients)))
            results = [r for batch in batches for r in batch]
            assert len(results) == clients * per_client
            assert {status for _, status, _ in results} == {202}
            ids = {text: body["ids"][0] for text, _, body in results}
            assert all(len(body["ids"]) == 1 for _, _, body in results)
            assert len(set(ids.values())) == 200  # distinct ids
            assert stored(bot) == 200
            for text, alert_id in ids.items():  # each id is the alert that was posted
                assert alert_row(bot, alert_id)["text"] == text

            await settle(bot)
            db = bot.app.db.conn
            rows = db.execute("SELECT recipient, text, kind FROM outbox").fetchall()
            expected = Counter(("root1", f"INFO {t}", "alert:info") for t in ids)
            assert Counter(rows) == expected  # one outbox row per alert
            assert Counter(bot.lines("root1")) == Counter(f"INFO {t}" for t in ids)
            states = db.execute("SELECT state, outcome FROM alerts").fetchall()
            assert Counter(s for s, _ in states) == {"delivered": 200}
            assert all(json.loads(o)["to"] == ["root1"] for _, o in states)

    run(go())


# --- end to end: a real `lcbot run --transport console` process ----------------------------------


def urlopen(
    port: int, path: str, body: Any = None, token: str | None = None
) -> tuple[int, bytes] | None:
    """(status, body) of one request; None while nothing listens yet."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError):
        return None


def expect_lines(bot, wanted: list[str]) -> None:
    missing = Counter(wanted)
    while +missing:
        bot.expect(lambda line: missing[line] > 0)
        missing[bot.seen[-1]] -= 1


def test_console_bot_prints_alerts_posted_over_http(tmp_path):
    port = free_port()
    project = make_project(
        tmp_path / "bot", extra=f'[ingress]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
    )
    with bots() as start:
        bot = start(project, **{TOKEN_ENV: TOKEN})
        health = wait_until(lambda: urlopen(port, "/healthz", token=TOKEN), "ingress up")
        assert health[0] == 200, health
        assert json.loads(health[1])["transport"] == {
            "name": "console",
            "ready": True,
            "logged_in_as": None,
            "down_for_seconds": None,
        }

        assert urlopen(port, "/alert", {"text": "no token"}) == (401, b"")
        assert urlopen(port, "/alert", {"text": "bad"}, token="nope") == (401, b"")

        status, body = urlopen(
            port, "/alert", {"text": "disk full", "level": "critical", "title": "db"}, TOKEN
        )
        assert status == 202, body
        (alert_id,) = json.loads(body)["ids"]
        critical = "CRITICAL db: disk full"
        expect_lines(bot, [critical, f"→ bob: {critical}", f"→ carol: {critical}"])

        resolved = am_payload(
            am_alert("Lag", "resolved", severity="warning", summary="lag ok", fingerprint="77")
        )
        status, body = urlopen(port, "/alertmanager", resolved, TOKEN)
        assert status == 202, body
        (am_id,) = json.loads(body)["ids"]
        text = "RESOLVED Lag: lag ok — instance=web-1:9100, job=node"
        expect_lines(bot, [text, f"→ bob: {text}"])

        status, body = urlopen(port, "/alert", {"text": ""}, TOKEN)
        assert status == 400 and b"'text'" in body

        bot.end_input()
        assert bot.wait() == 0
        bot.rest()
        assert Counter(bot.seen) == Counter(
            [critical, f"→ bob: {critical}", f"→ carol: {critical}", text, f"→ bob: {text}"]
        )  # carol got no warning, nobody anything twice, the 401/400 queued nothing
        assert "Traceback" not in bot.stderr
        assert "ingress listening on http://127.0.0.1" in bot.stderr
        assert urlopen(port, "/healthz", token=TOKEN) is None  # closed on exit

    rows = query(project, "SELECT id, source, state FROM alerts ORDER BY id")
    assert rows == [(alert_id, "http", "delivered"), (am_id, "alertmanager", "delivered")]


def test_run_refuses_exposed_listener_without_token(tmp_path):
    project = make_project(
        tmp_path / "bot", extra='[ingress]\nenabled = true\nlisten = "0.0.0.0:0"\n'
    )
    with bots() as start:
        bot = start(project)  # stdin stays open: the refusal alone must end the process
        assert bot.wait() == 2, (bot.seen, bot.stderr)
        assert bot.rest() == []
        stderr = bot.stderr
    assert "ingress.listen = 0.0.0.0:0 is reachable from the network" in stderr
    assert f"${TOKEN_ENV}" in stderr
    assert "Traceback" not in stderr

    check = lcbot(project, "config", "check")
    assert check.returncode == 2 and "reachable from the network" in check.stderr
    assert lcbot(project, "config", "check", **{TOKEN_ENV: TOKEN}).returncode == 0


def test_run_with_ingress_port_in_use_fails_clearly(tmp_path):
    with contextlib.closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        project = make_project(
            tmp_path / "bot", extra=f'[ingress]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
        )
        with bots() as start:
            bot = start(project)  # stdin stays open: the failure alone must end the process
            code = bot.wait()
            stderr = bot.stderr
    assert code in (1, 2), stderr
    assert "Traceback" not in stderr, stderr
    assert "error:" in stderr and str(port) in stderr
