"""State at scale: lcbot with a large history in its database.

Pre-fills ``lcbot.db`` with 1 M sent outbox rows and 1 M delivered alerts (all recent, so
retention keeps them; 200 alert keys), then reports:

1. DB size: the file, and MB per million rows of each table.
2. Queries: ms per call of each query the running bot repeats (twice a second, each
   minute), median and range of 200 calls on a copy of the file, run as the bot runs them
   (retention with the default 30-day ``keep``: nothing qualifies); also the per-message
   writes and the queries run once at start (no target: the start-up ones block the loop).
3. Idle CPU: a bot (memory transport, HTTP ingress on) on the pre-filled DB, left alone
   for ``--idle`` seconds after 2 s to settle; % of one core, and the busiest second.
4. ``GET /healthz`` on that bot: real HTTP requests, a new connection each, median and p99.
5. Dispatch throughput: ``bench_dispatch``'s workload (every reply verified), alternating
   runs on an empty and on the pre-filled DB (a copy, flushed to disk first); msg/s and CPU
   µs per message (process CPU time / messages), and the ratio.

Run by hand:  python benchmarks/bench_state.py [--rows N] [--idle SECONDS] [--messages N] [--runs N]
Targets: idle ≤ 1 % of a core, every repeated query ≤ 1 ms, /healthz ≤ 5 ms,
throughput on the pre-filled DB within 10 % of an empty DB.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import logging
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import aiohttp

from lcbot.alerts import Alert, AlertSettings
from lcbot.db import DB_NAME, connect, transaction
from lcbot.db import alerts as alerts_sql
from lcbot.db import outbox as outbox_sql
from lcbot.message import Message
from lcbot.retention import BATCH as RETENTION_BATCH
from lcbot.router import BATCH as ROUTER_BATCH
from lcbot.testing import Harness

sys.path.insert(0, str(Path(__file__).resolve().parent))
dispatch = importlib.import_module("bench_dispatch")  # the throughput workload

ADMINS, USERS, _ = dispatch.make_workload(0)  # the same 100 users as bench_dispatch
NAMES = ADMINS + USERS
KEYS = 200
LEVELS = ("critical", "warning", "info")
DAY = 86400.0
FILL_OUTBOX = (
    "INSERT INTO outbox (id, recipient, text, kind, state, attempts, created, sent_at, priority) "
    "VALUES (?, ?, ?, ?, 'sent', 0, ?, ?, ?)"
)
FILL_ALERTS = (
    "INSERT INTO alerts (created, text, level, title, key, resolved, source, state, outcome) "
    "VALUES (?, ?, ?, NULL, ?, 0, 'cli', 'delivered', ?)"
)
FILL_KEYS = "INSERT INTO alert_keys VALUES (?, ?, 0, NULL)"  # 200 keys, delivered a minute ago


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def spread(values: Iterable[float], fmt: str = "{:.3f}") -> str:
    """``median [min–max]``."""
    values = list(values)
    low, mid, high = (fmt.format(f(values)) for f in (min, statistics.median, max))
    return f"{mid} [{low}–{high}]"


def copy(master: Path, to: Path) -> Path:
    """Copy the file and flush it to disk (else the bot's first checkpoint fsync waits)."""
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(master, to)
    with open(to, "rb+") as handle:
        os.fsync(handle.fileno())
    return to


def size_mb(db: Path) -> float:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file, no -wal left
    conn.close()
    return db.stat().st_size / 1e6


def bulk(db: Path, *statements: tuple[str, Iterable[tuple]]) -> float:
    """``executemany`` each ``(sql, rows)`` in one transaction; returns the file's MB."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    with transaction(conn):
        for sql, params in statements:
            conn.executemany(sql, params)
    conn.close()
    return size_mb(db)


def prefill(db: Path, rows: int) -> None:
    """Create ``db`` with lcbot's schema, then bulk-insert (ids ascending, all within a day)."""
    connect(db).close()  # migrations
    now = time.time()
    start, step = now - 0.9 * DAY, 0.8 * DAY / rows
    outcomes = [json.dumps({"state": "delivered", "to": [name]}) for name in ADMINS]

    def outbox_row(i: int) -> tuple:
        created = start + i * step
        if i % 10:  # a reply; every tenth a warning alert
            return (i + 1, NAMES[i % 100], f"ok {i}", "reply", created, created + 0.05, 0)
        text = f"WARNING disk {i % KEYS} at 91%"
        return (i + 1, NAMES[i % 10], text, "alert:warning", created, created + 0.05, 1)

    def alert_row(i: int) -> tuple:
        k = i % KEYS
        return (start + i * step, f"disk {k} at 91%", LEVELS[i % 3], f"disk-{k}", outcomes[i % 10])

    empty = size_mb(db)
    with_outbox = bulk(db, (FILL_OUTBOX, map(outbox_row, range(rows))))
    keys = [(f"disk-{k}", now - 60) for k in range(KEYS)]
    full = bulk(db, (FILL_ALERTS, map(alert_row, range(rows))), (FILL_KEYS, keys))
    conn = sqlite3.connect(db)
    counts = conn.execute("SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM alerts)")
    assert counts.fetchone() == (rows, rows)
    conn.close()
    per = 1e6 / rows
    print(f"DB size        {full:,.1f} MB for {rows:,} outbox rows + {rows:,} alerts")
    print(
        f"               outbox {(with_outbox - empty) * per:.1f} MB per million rows, "
        f"alerts {(full - with_outbox) * per:.1f} MB per million rows"
    )


def time_queries(db: Path, rows: int) -> None:
    """Each query on ``db`` (a copy: the writes change it), as the running bot calls it."""
    conn = connect(db)
    settings = AlertSettings(routes={})
    now = time.time()
    ids = itertools.count(rows + 1)

    def in_tx(fn, *args):  # as the bot runs it: in BEGIN IMMEDIATE … COMMIT
        def call():
            with transaction(conn):
                fn(conn, *args)

        return call

    def put_one(c):
        outbox_sql.insert(c, [Message(next(ids), "user1", "ok", created=time.time())])

    alert = Alert("disk 7 at 91%", "warning", None, "disk-7", False, "cli", rows // 2, now)
    alert.outcome = {"state": "delivered", "to": ["admin0"]}
    before, quiet = now - settings.keep, now - settings.repeat_interval
    repeated = [
        ("outbox.take_retries", "0.5 s", in_tx(outbox_sql.take_retries)),
        ("alerts.take_new", "0.5 s", lambda: alerts_sql.take_new(conn, 0, ROUTER_BATCH)),
        ("outbox.pending_critical", "1 s*", lambda: outbox_sql.pending_critical(conn)),
        ("outbox.delete_old", "1 min", in_tx(outbox_sql.delete_old, before, RETENTION_BATCH)),
        ("alerts.delete_old", "1 min", in_tx(alerts_sql.delete_old, before, RETENTION_BATCH)),
        ("alerts.expire_keys", "1 min", in_tx(alerts_sql.expire_keys, quiet, before)),
        (
            "alerts.expire_silences_and_mutes",
            "1 min",
            in_tx(alerts_sql.expire_silences_and_mutes, now),
        ),
    ]
    writes = [
        ("outbox.insert (1 row)", "per msg", in_tx(put_one)),
        ("outbox.mark_sent (1 row)", "per msg", in_tx(outbox_sql.mark_sent, [rows // 3], now)),
        ("alerts.insert_routed", "per alert", in_tx(alerts_sql.insert_routed, alert)),
        ("alerts.set_outcome", "per alert", in_tx(alerts_sql.set_outcome, alert)),
    ]
    at_start = [
        ("outbox.next_id", lambda: outbox_sql.next_id(conn)),
        ("outbox.counts", lambda: outbox_sql.counts(conn)),
        ("outbox.last_sent_at", lambda: outbox_sql.last_sent_at(conn)),
        ("outbox.pending_rows", lambda: outbox_sql.pending_rows(conn)),
        ("alerts.load_keys", lambda: alerts_sql.load_keys(conn)),
    ]

    def timed(fn, calls: int) -> list[float]:
        fn()  # warm the cache
        times = []
        for _ in range(calls):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        return times

    print("queries        ms per call, median [min–max] of 200, on a copy of the pre-filled DB")
    for name, every, fn in repeated:
        times = timed(fn, 200)
        ok = statistics.median(times) <= 1.0
        print(f"  {name:34} every {every:6} {spread(times)}   target ≤ 1 ms   {mark(ok)}")
    print("  (* pending_critical: only with [alerts] fallback_urls, while the transport is down)")
    print("  at start, once (blocks the event loop; median [min–max] of 5):")
    for name, fn in at_start:
        print(f"  {name:34} {'':12} {spread(timed(fn, 5), '{:.1f}')}")
    print("  per-message writes (no target: the bot batches them, one commit per batch):")
    for name, every, fn in writes:
        print(f"  {name:34} {every:12} {spread(timed(fn, 200))}   (one commit each)")
    assert outbox_sql.counts(conn)["sent"] >= rows, "the pre-filled rows are gone"
    conn.close()


async def idle_and_health(folder: Path, rows: int, idle: float) -> None:
    """A running bot on the pre-filled DB: idle CPU, then GET /healthz."""
    h = Harness(
        folder,
        users=[(n, "admin") for n in ADMINS] + [(n, "user") for n in USERS],
        config={"ingress": {"enabled": True, "listen": "127.0.0.1:0"}},
    )
    t = time.perf_counter()
    await h.start()
    print(f"bot start      {(time.perf_counter() - t) * 1000:.0f} ms on the pre-filled DB")
    try:
        await asyncio.sleep(2.0)  # settle
        slices = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(max(1, round(idle))):
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.sleep(1.0)
            slices.append((time.process_time() - cpu) / (time.perf_counter() - wall) * 100)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        share = cpu / wall * 100
        print(
            f"idle CPU       {share:.2f} % of one core over {wall:.1f} s ({cpu * 1e3:.0f} ms CPU)"
            f"   target ≤ 1 %   {mark(share <= 1.0)}\n"
            f"               each second: {spread(slices, '{:.2f}')} % of one core"
        )
        health = h.app.health()
        assert health["outbox"]["sent"] == rows, health
        assert h.app.ingress is not None and h.app.ingress.port
        url = f"http://127.0.0.1:{h.app.ingress.port}/healthz"
        times = []
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection each, as a probe
        async with aiohttp.ClientSession(connector=connector) as session:
            for i in range(220):
                t = time.perf_counter()
                async with session.get(url) as response:
                    assert response.status == 200
                    body = await response.json()
                if i >= 20:  # 20 to warm up
                    times.append((time.perf_counter() - t) * 1000)
        assert body["outbox"]["sent"] == rows, body
        p99 = statistics.quantiles(times, n=100)[98]
        print(
            f"/healthz       {spread(times, '{:.2f}')} ms, p99 {p99:.2f} ms (200 GETs, median "
            f"[min–max])   target ≤ 5 ms (p99)   {mark(p99 <= 5.0)}"
        )
    finally:
        await h.stop()


def throughput(master: Path, messages: int, runs: int) -> None:
    """``bench_dispatch.run`` on an empty data dir and on one holding a copy of ``master``."""
    results: dict[str, list[tuple[float, float]]] = {"empty": [], "full": []}
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(dispatch.run(min(messages, 2000), Path(tmp)))  # warm-up, not counted
    for _ in range(runs):
        for kind in ("empty", "full"):
            with tempfile.TemporaryDirectory() as tmp:
                if kind == "full":
                    copy(master, Path(tmp) / DB_NAME)
                rate, *_, cpu_us = asyncio.run(dispatch.run(messages, Path(tmp)))
            results[kind].append((rate, cpu_us))
    print(f"throughput     {messages:,} messages per run, alternating, {runs} runs each")
    medians = {}
    for kind, label in (("empty", "empty DB"), ("full", "pre-filled")):
        rates, cpus = zip(*results[kind], strict=True)
        medians[kind] = statistics.median(rates), statistics.median(cpus)
        print(
            f"  {label:12} {spread(rates, '{:,.0f}')} msg/s   "
            f"CPU {spread(cpus, '{:.1f}')} µs per message"
        )
    rate_ratio = medians["full"][0] / medians["empty"][0]
    cpu_ratio = medians["full"][1] / medians["empty"][1]
    print(
        f"  pre-filled / empty: {rate_ratio:.2f}× msg/s, {cpu_ratio:.2f}× CPU per message   "
        f"target ≥ 0.90× msg/s   {mark(rate_ratio >= 0.9)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in each table")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement")
    parser.add_argument("--messages", type=int, default=20_000, help="messages per dispatch run")
    parser.add_argument("--runs", type=int, default=3, help="dispatch runs on each DB")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory() as tmp:
        master = Path(tmp) / "master" / DB_NAME
        t = time.perf_counter()
        prefill(master, args.rows)
        print(f"               (pre-filled in {time.perf_counter() - t:.1f} s)")
        time_queries(copy(master, Path(tmp) / "scratch" / DB_NAME), args.rows)
        copy(master, Path(tmp) / "bot" / "data" / DB_NAME)  # Harness: <folder>/data
        asyncio.run(idle_and_health(Path(tmp) / "bot", args.rows, args.idle))
        throughput(master, args.messages, args.runs)


if __name__ == "__main__":
    main()
