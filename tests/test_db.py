"""The database layer: every query the running bot repeats uses an index; another process
holding the write lock never stalls the event loop; retention deletes old history only."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from lcbot.alerts import make_alert
from lcbot.db import DB_NAME, connect, transaction
from lcbot.db import alerts as alerts_sql
from lcbot.db import heartbeats as heartbeats_sql
from lcbot.retention import BATCH
from lcbot.testing import Harness, running_bot
from lcbot.transports.memory import MemoryTransport
from tests.procs import lcbot, make_project, query

TEAM = {"root1": "root", "admin1": "admin", "user1": "user"}
DAY = 86400.0
TABLE_SCAN = re.compile(r"^SCAN (outbox|alerts|heartbeats)\b(?! USING)")


def run(coro):
    return asyncio.run(coro)


# --- every repeated query uses an index ---------------------------------------------------------


def plans(db: sqlite3.Connection, statements: list[str]) -> dict[str, list[str]]:
    """``EXPLAIN QUERY PLAN`` of each distinct SELECT / UPDATE / DELETE."""
    found = {}
    for sql in dict.fromkeys(statements):
        if not re.match(r"\s*(SELECT|UPDATE|DELETE)\b", sql, re.I):
            continue
        found[sql] = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
    return found


def test_the_scan_check_can_fail(tmp_path):
    db = connect(tmp_path / DB_NAME)
    found = plans(db, ["SELECT id FROM outbox WHERE kind = 'reply'", "SELECT 1 FROM alerts"])
    assert all(any(TABLE_SCAN.match(step) for step in steps) for steps in found.values())


def test_every_query_the_running_bot_repeats_uses_an_index(tmp_path):
    """Run a bot through all it does repeatedly (commands, SETs, alerts in-process and from
    another process, CLI retries, the fallback check, retention), capture every statement
    on its connection, and look at each one's plan."""
    sections = {
        "alerts": {"fallback_after": 0, "fallback_urls": ["json://127.0.0.1:9/"]},
        "ratelimit": {"max_attempts": 1},
    }
    statements: list[str] = []

    async def go():
        async with running_bot(tmp_path, users=TEAM, config=sections) as bot:
            conn = bot.app.db.conn
            conn.set_trace_callback(statements.append)
            await bot.send("user1", "whoami")
            await bot.send("admin1", "silence disk:/ 1h")
            await bot.send("user1", "mute 1h")
            await bot.alert("fire", level="critical", key="k")
            await bot.alert("fire again", level="critical", key="k")  # de-duplicated
            await asyncio.to_thread(store_from_outside, bot.app.db.path)
            bot.app.heartbeats.beat("in-process", 0.1)  # late at the next check
            bot.app.heartbeats.beat("removed", 60)
            bot.app.heartbeats.remove("removed")
            bot.transport.fail_next = 1
            await bot.alert("lost", level="info")  # one failed send: dead
            other = connect(bot.app.db.path)
            with transaction(other):  # what `lcbot outbox retry --dead` does
                other.execute("UPDATE outbox SET state = 'retry' WHERE state = 'dead'")
            other.close()
            await asyncio.sleep(1.2)  # the writer looks for retries, the router for alerts
            await bot.settle()
            bot.transport.set_ready(False)
            bot.app.bot("test").alert("down", level="critical")  # waits: nothing is sent
            while bot.app.router.route_pending() or bot.app.outbox.dirty:
                await asyncio.sleep(0.01)
            await bot.app.fallback.check()
            bot.transport.set_ready(True)
            await bot.app.retention.round()
            await bot.settle()
            conn.set_trace_callback(None)
            found = plans(conn, statements)
        assert len(found) >= 8, list(found)  # the workload reached the repeated queries
        assert len([sql for sql in found if "heartbeats" in sql]) >= 4, list(found)
        scans = {sql: steps for sql, steps in found.items() if any(map(TABLE_SCAN.match, steps))}
        assert not scans, "table scans:\n" + "\n".join(f"{s}\n  {p}" for s, p in scans.items())

    run(go())


def store_from_outside(path: Path) -> None:
    db = connect(path)
    with transaction(db):
        alerts_sql.insert_new(db, [make_alert("from the CLI", "warning")])
        heartbeats_sql.beat(db, "cron", 0.1, 0, "warning", "cli", time.time())
        heartbeats_sql.beat(db, "gone", 60, 0, "warning", "cli", time.time())
        heartbeats_sql.remove(db, "gone")  # a tombstone for the bot
    db.close()


# --- another process holding the write lock ------------------------------------------------

HOLD_LOCK = """\
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


@contextlib.contextmanager
def locked(path: Path, seconds: float):
    """Another process holds ``BEGIN IMMEDIATE`` on ``path`` for ``seconds``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


async def reply_time(bot, sender: str, text: str, want: str, limit: float) -> float:
    """Seconds from the message to its reply reaching the transport."""
    start = time.monotonic()
    before = len(bot.transport.sent)
    await bot.transport.inject(sender, text)
    while (sender, want) not in bot.transport.sent[before:]:
        assert time.monotonic() - start < limit, f"no reply to {text!r} within {limit}s"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def test_a_locked_database_does_not_stall_replies_or_healthz(tmp_path):
    hold = 4.0
    config = {"ingress": {"enabled": True, "listen": "127.0.0.1:0"}}

    async def go():
        async with running_bot(tmp_path, users=TEAM, config=config) as bot:
            await bot.send("user1", "whoami")  # warm
            url = f"http://127.0.0.1:{bot.app.ingress.port}/healthz"
            with locked(bot.app.db.path, hold):
                start = time.monotonic()
                async with aiohttp.ClientSession() as http, http.get(url) as reply:
                    assert reply.status == 200
                healthz = time.monotonic() - start
                took = await reply_time(bot, "user1", "whoami", "user1 (user)", hold)
                alert = bot.app.bot("test").alert("raised while locked", level="critical")
                await asyncio.sleep(0.3)
                assert "CRITICAL raised while locked" not in bot.lines("user1")  # waits
            # (bounds far above the ~30 ms this takes, far below the lock's 4 s)
            assert healthz < 1.0 and took < 1.0, (healthz, took)
            await bot.settle()
            assert "CRITICAL raised while locked" in bot.lines("user1")
            assert alert.id > 0
        rows = query_data(tmp_path, "SELECT state FROM outbox WHERE text = 'user1 (user)'")
        assert rows == [("sent",), ("sent",)]  # the reply sent unstored was stored after

    run(go())


# --- retention ------------------------------------------------------------------------------


def seed_history(path: Path, now: float) -> None:
    """Old and recent rows of every state, in id order (ids grow with time)."""
    db = connect(path)
    rows = []
    for i in range(1, BATCH * 2 + 100):  # more than two batches of old sent rows
        rows.append((i, "user1", f"old {i}", "sent", now - 40 * DAY + i))
    rows += [
        (5000, "user1", "old dead", "dead", now - 35 * DAY),
        (5001, "user1", "old pending", "pending", now - 35 * DAY),
        (5002, "user1", "recent sent", "sent", now - 1 * DAY),
    ]
    with transaction(db):
        db.executemany(
            "INSERT INTO outbox (id, recipient, text, state, created) VALUES (?, ?, ?, ?, ?)", rows
        )
        db.executemany(
            "INSERT INTO alerts (created, text, level, state) VALUES (?, ?, 'info', ?)",
            [
                (now - 40 * DAY, "old routed", "delivered"),
                (now - 40 * DAY, "old new", "new"),
                (now - 1 * DAY, "recent routed", "delivered"),
            ],
        )
        db.execute("INSERT INTO alert_keys VALUES ('quiet', ?, 0, NULL)", (now - 3600,))
        db.execute("INSERT INTO alert_keys VALUES ('counting', ?, 4, ?)", (now - 3600, now - 60))
        db.execute("INSERT INTO alert_keys VALUES ('ancient', ?, 4, ?)", (now - 40 * DAY, now))
    db.close()


def test_retention_deletes_old_history_in_batches_never_pending_rows(tmp_path):
    now = time.time()
    (tmp_path / "data").mkdir()
    seed_history(tmp_path / "data" / DB_NAME, now)
    config = {"storage": {"keep": "30d"}, "alerts": {"repeat_interval": 600}}

    class Down(MemoryTransport):  # WeChat is down: the old pending row stays pending
        async def start(self, on_message):
            self.on_message = on_message

    async def go():
        bot = Harness(tmp_path, users=TEAM, config=config, transport=Down())
        await bot.start()
        try:
            app = bot.app
            assert app.outbox.counts["sent"] == BATCH * 2 + 100
            assert await app.retention.round() > BATCH * 2  # several batches in one round
            # pending: the old row, and the message of the alert "old new" routed at start
            assert app.outbox.counts == {"pending": 2, "sent": 1, "dead": 0, "retry": 0}
            assert set(app.router.keys) == {"counting"}  # quiet and ancient keys expired
        finally:
            await bot.stop()

    run(go())
    texts = [t for (t,) in query_data(tmp_path, "SELECT text FROM outbox WHERE id <= 5002")]
    assert texts == ["old pending", "recent sent"]
    alerts = [t for (t,) in query_data(tmp_path, "SELECT text FROM alerts ORDER BY id")]
    assert "old routed" not in alerts and "recent routed" in alerts
    keys = [k for (k,) in query_data(tmp_path, "SELECT key FROM alert_keys")]
    assert keys == ["counting"]


def test_alerts_not_yet_routed_are_never_deleted(tmp_path):
    now = time.time()
    seed_history(tmp_path / DB_NAME, now)
    db = connect(tmp_path / DB_NAME)
    with transaction(db):
        deleted, more = alerts_sql.delete_old(db, now - 30 * DAY, BATCH)
    assert (deleted, more) == (1, None)  # one deleted; a newer row was reached
    texts = [t for (t,) in db.execute("SELECT text FROM alerts ORDER BY id")]
    assert texts == ["old new", "recent routed"]


def query_data(folder: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(folder / "data" / DB_NAME)) as db:
        return db.execute(sql).fetchall()


def test_storage_keep_is_checked(tmp_path):
    from lcbot.errors import ConfigError

    with pytest.raises(ConfigError, match=r"storage\.keep: expected a duration"):
        Harness(tmp_path, users=TEAM, config={"storage": {"keep": "soon"}})


def test_cli_alerts_purge(tmp_path):
    project = make_project(tmp_path / "bot")
    now = time.time()
    db = connect(project / ".lcbot" / DB_NAME)
    with transaction(db):
        db.executemany(
            "INSERT INTO alerts (created, text, level, state) VALUES (?, ?, 'info', ?)",
            [
                (now - 10 * DAY, "old routed", "delivered"),
                (now - 10 * DAY, "old waiting", "new"),
                (now - 1 * DAY, "recent", "delivered"),
            ],
        )
    db.close()
    purged = lcbot(project, "alerts", "purge", "--older-than", "7d")
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.strip() == "purged 1 alert(s)"
    left = [t for (t,) in query(project, "SELECT text FROM alerts ORDER BY id")]
    assert left == ["old waiting", "recent"]
    bad = lcbot(project, "alerts", "purge", "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than" in bad.stderr and "Traceback" not in bad.stderr
