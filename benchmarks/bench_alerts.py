"""Alert ingestion and WeChat-paced delivery.

1. Ingest: 10,000 alerts from 4 threads (mixed levels, 200 distinct keys, one on_alert
   hook) through ``bot.alert`` → hooks → routing → de-duplication → outbox, 100 users
   (1 root, 9 admins, 90 users). Prints alerts/s from the first alert raised to the last
   one routed and committed with its messages, and CPU µs per alert (process CPU time /
   alerts: the figure that survives a noisy machine). Target (issue 4): ≥ 10,000 alerts/s.
2. Delivery: the real drainer with WeChat pacing (1/s, 40/min, 3 s per recipient) on a
   fake clock drains the queue; prints how many messages leave, and how long that takes
   in (simulated) WeChat time — coalescing at work.

Run by hand:  python benchmarks/bench_alerts.py
"""

from __future__ import annotations

import asyncio
import logging
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

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


async def ingest(data_dir: Path) -> int:
    """Phase 1 on a running bot whose transport is down: every message stays pending."""
    users = [{"name": "root", "pri": "root"}]
    users += [{"name": f"admin{i}", "pri": "admin"} for i in range(9)]
    users += [{"name": f"user{i}", "pri": "user"} for i in range(90)]
    config = validate(
        {"bot": {"data_dir": str(data_dir)}, "users": users, "plugins": {"dirs": []}},
        data_dir / "lcbot.toml",
    )
    host = PluginHost()
    host.load_builtins()
    hook = CountingHook()
    host.register(hook, "bench", source="dir")
    transport = DownTransport()
    app = App(config, transport, plugins=host)
    await app.start()
    bot = app.bot("bench")

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
    print(
        f"ingest     {ALERTS:,} alerts from {THREADS} threads in {elapsed:.2f} s "
        f"= {ALERTS / elapsed:,.0f} alerts/s, {cpu / ALERTS * 1e6:.0f} µs CPU per alert"
    )
    print(f"           outcomes {states}; {queued:,} messages queued for 100 users")
    return queued


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
    drainer = Drainer(feed, outbox, transport, lambda r: Address("name", r, r), pacing, clock)
    drainer.take_feed()
    assert drainer.pending == queued, (drainer.pending, queued)
    while drainer.pending:
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
    logging.basicConfig(level=logging.ERROR)
    print(f"Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        queued = asyncio.run(ingest(Path(tmp)))
        asyncio.run(deliver(Path(tmp), queued))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS   {rss:.1f} MiB")
