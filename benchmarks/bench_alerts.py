"""Alert ingestion (in process and over HTTP) and WeChat-paced delivery.

1. Ingest: 10,000 alerts from 4 threads (mixed levels, 200 distinct keys, one on_alert
   hook) through ``bot.alert`` → hooks → routing → de-duplication → outbox, 100 users
   (1 root, 9 admins, 90 users). Prints alerts/s from the first alert raised to the last
   one routed and committed with its messages, and CPU µs per alert (process CPU time /
   alerts: the figure that survives a noisy machine); then the median and range of
   ``RUNS`` such runs, and the longest outbox flush and routing round on the event loop,
   their 99th percentile and how many took over 10 ms (target, issue 16: ≥ 50,000
   alerts/s; no flush over 10 ms).
2. HTTP: ``POST /alert`` from 16 concurrent keep-alive clients (aiohttp, in a child
   process) against the bot's ingress, then the same client against a bare aiohttp app (one
   handler answering 202 with a small JSON body) on the same machine; prints both rates,
   CPU µs per request of the serving process and the ratio (target: ≥ 0.8).
3. Delivery: the real drainer with WeChat pacing (1/s, 40/min, 3 s per recipient) on a
   fake clock drains the queue; prints how many messages leave, and how long that takes
   in (simulated) WeChat time — coalescing at work.

Run by hand:  python benchmarks/bench_alerts.py [--runs N] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from lcbot import hookimpl
from lcbot.app import App
from lcbot.config import validate
from lcbot.db import DB_NAME, Database
from lcbot.drainer import Drainer, Pacing
from lcbot.message import Feed
from lcbot.outbox import Outbox
from lcbot.plugins import PluginHost
from lcbot.transports.base import Address
from lcbot.transports.memory import MemoryTransport

ALERTS = 10_000
THREADS = 4
CLIENTS = 16  # concurrent keep-alive HTTP clients
KEYS = 200
LEVELS = ("critical", "warning", "info")


class CountingHook:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def on_alert(self, alert):
        self.calls += 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def bench_config(data_dir: Path, http: bool = False) -> Any:
    users = [{"name": "root", "pri": "root"}]
    users += [{"name": f"admin{i}", "pri": "admin"} for i in range(9)]
    users += [{"name": f"user{i}", "pri": "user"} for i in range(90)]
    values: dict[str, Any] = {
        "bot": {"data_dir": str(data_dir)},
        "users": users,
        "plugins": {"dirs": []},
    }
    if http:
        values["ingress"] = {"enabled": True, "listen": "127.0.0.1:0"}
    return validate(values, data_dir / "lcbot.toml")


class Longest:
    """Wraps a method of an object: how long each call took, in seconds."""

    def __init__(self, obj: Any, name: str) -> None:
        self.calls: list[float] = []
        inner = getattr(obj, name)

        def timed(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args)
            finally:
                self.calls.append(time.perf_counter() - start)

        setattr(obj, name, timed)


def spread(calls: list[float]) -> str:
    """The longest call, the 99th percentile and how many took over 10 ms."""
    ordered = sorted(calls)
    over = sum(c > 0.01 for c in ordered)
    p99 = ordered[int(len(ordered) * 0.99)] if ordered else 0.0
    return (
        f"{ordered[-1] * 1e3 if ordered else 0:.1f} ms (p99 {p99 * 1e3:.1f} ms, "
        f"{over} of {len(ordered)} over 10 ms)"
    )


async def ingest(data_dir: Path, quiet: bool = False) -> tuple[int, float, float, list, list]:
    """Phase 1 on a running bot whose transport is down: every message stays pending.
    Returns (messages queued, alerts/s, CPU µs per alert, flush times, round times)."""
    config = bench_config(data_dir)
    host = PluginHost()
    host.load_builtins()
    hook = CountingHook()
    host.register(hook, "bench", source="dir")
    transport = DownTransport()
    app = App(config, transport, plugins=host)
    await app.start()
    bot = app.bot("bench")
    flushes, rounds = Longest(app.outbox, "flush"), Longest(app.router, "route_pending")

    def producer(t: int) -> None:
        for i in range(t, ALERTS, THREADS):
            key = i % KEYS
            bot.alert(
                f"check {key} failed on host-{key:03d} (run {i})",
                level=LEVELS[key % 3],
                key=f"check:{key}",
            )

    cpu, start = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=producer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) or app.router.submitted or app.outbox.dirty:
        await asyncio.sleep(0.001)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    db = app.db.conn
    states = dict(db.execute("SELECT state, count(*) FROM alerts GROUP BY state").fetchall())
    queued = app.outbox.counts["pending"]
    assert sum(states.values()) == ALERTS and "new" not in states, states
    assert hook.calls == ALERTS
    await app.stop(0)
    rate, per_alert = ALERTS / elapsed, cpu / ALERTS * 1e6
    if not quiet:
        print(
            f"ingest     {ALERTS:,} alerts from {THREADS} threads in {elapsed:.2f} s "
            f"= {rate:,.0f} alerts/s, {per_alert:.0f} µs CPU per alert"
        )
        print(f"           outcomes {states}; {queued:,} messages queued for 100 users")
    return queued, rate, per_alert, flushes.calls, rounds.calls


def ingest_runs(runs: int) -> None:
    """Phase 1 again ``runs`` times, each on a fresh data directory: median and range."""
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(asyncio.run(ingest(Path(tmp), quiet=True))[1:])
    rates, cpus, flushes, rounds = zip(*results, strict=True)
    print(
        f"ingest×{runs}   {statistics.median(rates):,.0f} alerts/s median "
        f"({min(rates):,.0f}–{max(rates):,.0f}), {statistics.median(cpus):.1f} µs CPU per "
        f"alert ({min(cpus):.1f}–{max(cpus):.1f})"
    )
    for what, calls in (("outbox flush", flushes), ("routing round", rounds)):
        every = [seconds for run in calls for seconds in run]
        print(f"           longest {what} on the event loop, all runs: {spread(every)}")


CLIENT = """
import asyncio, json, sys, time
import aiohttp

async def main(port, clients, requests):
    url = f"http://127.0.0.1:{port}/alert"
    left = [requests]
    bad = [0]

    async def worker(session, n):
        i = 0
        while left[0] > 0:
            left[0] -= 1
            i += 1
            key = (n * 7919 + i) % 200
            body = {"text": f"check {key} failed (client {n}, {i})", "level": "warning",
                    "key": f"check:{key}"}
            async with session.post(url, json=body) as reply:
                await reply.read()
                bad[0] += reply.status != 202

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(url, json={"text": "warm-up"}) as reply:
            await reply.read()
        start = time.perf_counter()
        await asyncio.gather(*(worker(session, n) for n in range(clients)))
        elapsed = time.perf_counter() - start
    print(json.dumps({"elapsed": elapsed, "bad": bad[0]}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
"""


async def load(port: int, requests: int) -> tuple[float, float]:
    """The client in a child process; returns (requests/s, CPU µs per request here)."""
    cpu = time.process_time()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(port), str(CLIENTS), str(requests),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await child.communicate()
    cpu = time.process_time() - cpu
    assert child.returncode == 0, out
    import json

    result = json.loads(out)
    assert result["bad"] == 0, result
    return requests / result["elapsed"], cpu / requests * 1e6


async def http_bot(data_dir: Path, requests: int) -> tuple[float, float, float]:
    """``POST /alert`` against the bot's ingress: (requests/s, CPU µs, longest commit)."""
    app = App(bench_config(data_dir, http=True), DownTransport(), plugins=PluginHost())
    await app.start()
    assert app.ingress is not None and app.ingress.port
    try:
        rate, cpu = await load(app.ingress.port, requests)
        while app.router.submitted or app.outbox.dirty:
            await asyncio.sleep(0.01)
        count = app.db.conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
        assert count == requests + 1, count  # and the warm-up
    finally:
        await app.stop(0)
    return rate, cpu, app.alert_store.longest


async def http_bare(requests: int) -> tuple[float, float]:
    """The same client against a bare aiohttp handler."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ids": [1]}, status=202)

    web_app = web.Application()
    web_app.router.add_post("/alert", handler)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        return await load(port, requests)
    finally:
        await runner.cleanup()


def http(requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bot_rate, bot_cpu, longest = asyncio.run(http_bot(Path(tmp), requests))
    bare_rate, bare_cpu = asyncio.run(http_bare(requests))
    print(
        f"http       POST /alert, {CLIENTS} keep-alive clients, {requests:,} requests: "
        f"bot {bot_rate:,.0f}/s ({bot_cpu:.0f} µs CPU each), bare aiohttp {bare_rate:,.0f}/s "
        f"({bare_cpu:.0f} µs CPU each): {bot_rate / bare_rate:.2f}×"
    )
    print(f"           longest alert commit on the event loop {longest * 1e3:.1f} ms")


async def deliver(data_dir: Path, queued: int) -> None:
    """Phase 2: the real drainer with WeChat pacing on a fake clock drains that queue."""
    db = Database(data_dir / DB_NAME)
    db.open()
    feed = Feed()
    outbox = Outbox(db, feed)
    outbox.open()
    transport = MemoryTransport()
    transport.set_ready(True)
    clock = FakeClock()
    pacing = Pacing(per_second=1, per_minute=40, per_recipient_gap=3)
    drainer = Drainer(
        feed, outbox, transport, lambda r: Address("name", r, r), pacing, clock,
        load=outbox.pending_for,
    )  # fmt: skip
    drainer.take_feed()
    assert outbox.counts["pending"] == queued, (outbox.counts, queued)
    while drainer.pending or drainer.backlog.in_database:
        at = drainer.next_send_at()
        clock.now = max(clock.now, at if at is not None else clock.now)
        await drainer.send_round()
        assert outbox.flush()
        drainer.take_feed()
    longest = max((len(text) for _, text in transport.sent), default=0)
    print(
        f"delivery   {queued:,} queued messages left as {transport.sent_count:,} WeChat "
        f"messages (coalesced, ≤ {pacing.max_chars} chars; longest {longest})"
    )
    print(f"           at 1/s, 40/min, 3 s/recipient: {clock.now / 60:.1f} min of WeChat time")
    db.close()


class DownTransport(MemoryTransport):
    """Never ready: messages stay in the outbox for the delivery phase."""

    async def start(self, on_message) -> None:
        self.on_message = on_message


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="ingest runs for the median")
    parser.add_argument("--requests", type=int, default=20_000, help="HTTP requests per side")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        queued = asyncio.run(ingest(Path(tmp)))[0]
        asyncio.run(deliver(Path(tmp), queued))
    ingest_runs(args.runs)
    http(args.requests)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS   {rss:.1f} MiB")
