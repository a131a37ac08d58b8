"""Dispatch throughput: 20,000 messages through the real dispatcher, outbox and drainer.

In-process, with a transport that confirms every send at once. 100 users (10 admins);
80% ``status <i>`` (GET, any user, reply ``ok <i>``), 20% ``set k<i> v`` (SET, admin),
half from admins (allowed, other admins get a notice) and half from users (denied).
Every reply is checked (the drainer coalesces replies to one user into fewer sends;
each line is checked). Prints msgs/s (first message in → last message confirmed sent),
p50/p99 latency of replies, and peak RSS.

Run by hand:  python benchmarks/bench_dispatch.py [--messages N]
Target (issue 3): ≥ 20,000 msg/s and ≤ 60 MiB peak RSS on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from lcbot import CmdType, Pri, hookimpl
from lcbot.app import App
from lcbot.config import validate
from lcbot.plugins import PluginHost
from lcbot.transports.base import Address
from lcbot.transports.memory import MemoryTransport

WINDOW = 256  # messages in flight at once


class BenchPlugin:
    @hookimpl
    def register_commands(self, registry):
        @registry.command("status", help="bench GET")
        def status(ctx):
            return f"ok {ctx.extra}"

        @registry.command("set", kind=CmdType.SET, pri=Pri.ADMIN, help="bench SET")
        def set_(ctx):
            return f"done {ctx.extra.split()[0]}"


class TimingTransport(MemoryTransport):
    def __init__(self) -> None:
        super().__init__(record=True)
        self.sent_at: dict[str, float] = {}
        self.last_sent = 0.0

    async def send(self, address: Address, text: str) -> None:
        self.sent_count += 1
        self.last_sent = time.perf_counter()
        for line in text.split("\n"):  # the drainer coalesces pending messages
            self.sent.append((address.label, line))
            self.sent_at[line] = self.last_sent


def make_workload(n: int, seed: int = 7):
    rng = random.Random(seed)
    admins = [f"admin{i}" for i in range(10)]
    users = [f"user{i}" for i in range(90)]
    work = []
    for i in range(n):
        r = rng.random()
        if r < 0.8:
            work.append((rng.choice(admins + users), f"status {i}", f"ok {i}"))
        elif r < 0.9:
            work.append((rng.choice(admins), f"set k{i} v", f"done k{i}"))
        else:
            work.append((rng.choice(users), f"set k{i} v", "not allowed: set"))
    return admins, users, work


async def run(n: int, data_dir: Path) -> tuple:
    admins, users, work = make_workload(n)
    raw = {
        "bot": {"data_dir": str(data_dir), "slow_notice": 10, "commands_per_minute": 0},
        "users": [{"name": a, "pri": "admin"} for a in admins]
        + [{"name": u, "pri": "user"} for u in users],
        "plugins": {"dirs": []},
    }
    config = validate(raw, data_dir / "lcbot.toml")
    host = PluginHost()
    host.load_builtins()
    host.register(BenchPlugin(), "bench", source="dir")
    transport = TimingTransport()
    app = App(config, transport, plugins=host)
    await app.start()

    sent_in: dict[int, float] = {}

    feed = iter(enumerate(work))

    async def client() -> None:  # WINDOW clients share the feed: WINDOW messages in flight
        for i, (sender, text, _) in feed:
            sent_in[i] = time.perf_counter()
            await transport.inject(sender, text)

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(WINDOW)))
    assert await app.drain(120), "outbox did not drain"
    elapsed, cpu = transport.last_sent - start, time.process_time() - cpu
    await app.stop()

    # verify every reply
    got = Counter(transport.sent)
    expected = Counter((s, r) for s, _, r in work)
    allowed_sets = sum(1 for _, t, r in work if r.startswith("done"))
    for (sender, reply), count in expected.items():
        assert got[(sender, reply)] >= count, f"missing reply {reply!r} to {sender}"
    notices = sum(c for (_, text), c in got.items() if " set set: " in text)
    assert notices == allowed_sets * (len(admins) - 1), (notices, allowed_sets)

    latencies = [
        (transport.sent_at[r] - sent_in[i]) * 1000
        for i, (_, _, r) in enumerate(work)
        if r != "not allowed: set"
    ]
    q = statistics.quantiles(latencies, n=100)
    return n / elapsed, q[49], q[98], allowed_sets, notices, transport.sent_count, cpu / n * 1e6


def report(n: int, runs: list[tuple]) -> None:
    rates = sorted(r[0] for r in runs)
    cpus = sorted(r[6] for r in runs)
    _, p50, p99, allowed_sets, notices, sent_count, _ = sorted(runs)[len(runs) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"messages       {n:,} from 100 users ({allowed_sets} allowed SETs → {notices:,} notices)"
    )
    print(f"messages sent  {sent_count:,} per run (replies + notices, coalesced), all verified")
    print(
        f"throughput     {rates[len(rates) // 2]:,.0f} msg/s median of {len(runs)} runs "
        f"(each: {', '.join(f'{r:,.0f}' for r in rates)})"
    )
    print(
        f"CPU            {cpus[len(cpus) // 2]:.1f} µs per message median "
        f"(each: {', '.join(f'{c:.1f}' for c in cpus)})"
    )
    print(f"latency        p50 {p50:.1f} ms   p99 {p99:.1f} ms (median run)")
    print(f"peak RSS       {rss:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # denials are logged at warning level
    print(f"Python {sys.version.split()[0]}")
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(asyncio.run(run(args.messages, Path(tmp))))
    report(args.messages, runs)


if __name__ == "__main__":
    main()
