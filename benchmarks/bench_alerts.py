"""Alert ingestion and WeChat-paced delivery.

1. Ingest: 10,000 alerts from 4 threads (mixed levels, 200 distinct keys, one on_alert
   hook) through ``app.alert`` → hooks → routing → de-duplication → outbox, 100 users
   (1 root, 9 admins, 90 users). Prints alerts/s from the first alert raised to the last
   one routed and committed with its messages. Target (issue 4): ≥ 10,000 alerts/s.
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
from lcbot.drainer import Pacing
from lcbot.plugins import PluginHost
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


async def main(data_dir: Path) -> None:
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
    transport = MemoryTransport()
    app = App(config, transport, plugins=host)
    await app.start()
    transport.set_ready(False)  # nothing leaves during ingest

    def producer(t: int) -> None:
        for i in range(t, ALERTS, THREADS):
            key = i % KEYS
            app.alert(
                f"check {key} failed on host-{key:03d} (run {i})",
                level=LEVELS[key % 3],
                key=f"check:{key}",
                source="bench",
            )

    start = time.perf_counter()
    threads = [threading.Thread(target=producer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) or app.alerts.route_new():
        await asyncio.sleep(0.001)
    app._store()  # commit the last batch of messages and outcomes
    elapsed = time.perf_counter() - start
    db = app.outbox.db
    states = dict(db.execute("SELECT state, count(*) FROM alerts GROUP BY state").fetchall())
    queued = db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
    assert sum(states.values()) == ALERTS and "new" not in states, states
    assert hook.calls == ALERTS
    print(
        f"ingest     {ALERTS:,} alerts from {THREADS} threads in {elapsed:.2f} s "
        f"= {ALERTS / elapsed:,.0f} alerts/s"
    )
    print(f"           outcomes {states}; {queued:,} messages queued for 100 users")

    # 2. WeChat-paced delivery on a fake clock
    clock = FakeClock()
    drainer = app.drainer
    drainer.clock = clock
    drainer.pacing = Pacing(per_second=1, per_minute=40, per_recipient_gap=3)
    transport.set_ready(True)
    while drainer.pending:
        at = drainer.next_send_at()
        clock.now = max(clock.now, at if at is not None else clock.now)
        await drainer.send_round()
        app._store()
    longest = max((len(text) for _, text in transport.sent), default=0)
    print(
        f"delivery   {queued:,} queued messages left as {transport.sent_count:,} WeChat "
        f"messages (coalesced, ≤ {drainer.pacing.max_chars} chars; longest {longest})"
    )
    print(f"           at 1/s, 40/min, 3 s/recipient: {clock.now / 60:.1f} min of WeChat time")
    app.transport.set_ready(False)
    await app.stop(1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS   {rss:.1f} MiB")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    print(f"Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
