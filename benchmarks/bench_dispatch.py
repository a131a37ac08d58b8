"""Dispatch: commands through the real dispatcher, outbox (SQLite) and drainer.

In-process, with a transport that confirms every send at once. 100 users (10 admins);
80% ``status <i>`` (GET, any user, reply ``ok <i>``), 20% ``set k<i> v`` (SET, admin),
half from admins (allowed) and half from users (denied: ``not allowed: set``, logged).
Three modes, each run in a fresh child process (its own peak RSS):

* ``default``: lcbot as it runs: an allowed SET notifies the other admins, and the replies
  pending for one person leave coalesced, as one message.
* ``equal``: the work of a plain command bot: no SET notices, and every reply is its own
  transport send — the figure to compare with other bots.
* ``authorize``: ``default`` with one no-op ``authorize`` hook installed.

Each run sends a warm-up of 2,000 messages first (not counted), then ``--messages`` from
256 concurrent clients, then 500 one at a time (each waits for its reply). Prints msg/s
(first message in → last reply sent), **CPU µs per message** (process CPU time over
messages: the figure that survives a noisy machine), reply latency p50/p99 under load and
with one message in flight, and peak RSS; median and range over ``--runs`` runs. Every
reply and notice is checked by exact multiset equality (a duplicate or an extra fails).
Logging is on at INFO, the level ``lcbot run`` uses (to a pipe the parent reads).

Run by hand:  python benchmarks/bench_dispatch.py [--messages N] [--runs N] [--mode M]
Targets (issue 16, 2 cores): equal ≤ 11 µs CPU/msg and ≥ 90,000 msg/s; default ≤ 9 µs;
p50 with one in flight ≤ 2 ms; peak RSS ≤ 60 MiB; authorize ≤ 10% slower than default.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import random
import resource
import statistics
import subprocess
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

WINDOW = 256  # messages in flight at once under load
WARMUP = 2_000
SINGLE = 500  # messages sent one at a time
MODES = ("default", "equal", "authorize")


class BenchPlugin:
    @hookimpl
    def register_commands(self, registry):
        @registry.command("status", help="bench GET")
        def status(ctx):
            return f"ok {ctx.extra}"

        @registry.command("set", kind=CmdType.SET, pri=Pri.ADMIN, help="bench SET")
        def set_(ctx):
            return f"done {ctx.extra.split()[0]}"


class NoOpAuthorize:
    @hookimpl
    def authorize(self, user, command, extra):
        return None


class TimingTransport(MemoryTransport):
    """Records each line sent (the drainer may coalesce several replies into one send)."""

    def __init__(self) -> None:
        super().__init__(record=False)
        self.lines: list[tuple[str, str]] = []
        self.sent_at: dict[str, float] = {}
        self.last_sent = 0.0

    async def send(self, address: Address, text: str) -> None:
        self.sent_count += 1
        self.last_sent = now = time.perf_counter()
        for line in text.split("\n"):
            self.lines.append((address.label, line))
            self.sent_at[line] = now


def workload(n: int, first: int, seed: int) -> list[tuple[str, str, str]]:
    """``n`` messages ``(sender, text, expected reply)`` numbered from ``first``."""
    rng = random.Random(seed)
    admins = [f"admin{i}" for i in range(10)]
    everyone = admins + [f"user{i}" for i in range(90)]
    work = []
    for i in range(first, first + n):
        r = rng.random()
        if r < 0.8:
            work.append((rng.choice(everyone), f"status {i}", f"ok {i}"))
        elif r < 0.9:
            work.append((rng.choice(admins), f"set k{i} v", f"done k{i}"))
        else:
            work.append((rng.choice(everyone[10:]), f"set k{i} v", "not allowed: set"))
    return work


def expected_lines(work: list[tuple[str, str, str]], notices: bool) -> Counter:
    expected = Counter((sender, reply) for sender, _, reply in work)
    if notices:
        admins = [f"admin{i}" for i in range(10)]
        for sender, text, reply in work:
            if reply.startswith("done"):
                for other in admins:
                    if other != sender:
                        expected[(other, f"{sender} set set: {text[4:]}")] += 1
    return expected


async def start_app(mode: str, data_dir: Path) -> tuple[App, TimingTransport]:
    users = [{"name": f"admin{i}", "pri": "admin"} for i in range(10)]
    users += [{"name": f"user{i}", "pri": "user"} for i in range(90)]
    # no per-user command limit: it would throttle a load test (README: load tests)
    bot = {"data_dir": str(data_dir), "slow_notice": 10, "commands_per_minute": 0}
    config = validate({"bot": bot, "users": users, "plugins": {"dirs": []}}, data_dir / "x.toml")
    host = PluginHost()
    host.load_builtins()
    host.register(BenchPlugin(), "bench", source="dir")
    if mode == "authorize":
        host.register(NoOpAuthorize(), "noop-authorize", source="dir")
    transport = TimingTransport()
    app = App(config, transport, plugins=host)
    await app.start()
    if mode == "equal":  # a plain command bot: no SET notices, one send per reply
        app.dispatcher.allowed_users = lambda users, command, extra: []
        app.drainer.pacing = dataclasses.replace(app.drainer.pacing, coalesce=False)
    return app, transport


async def feed(transport: TimingTransport, work: list, clients: int) -> dict[int, float]:
    """Send ``work`` from ``clients`` concurrent senders; returns when each message went in."""
    sent_in: dict[int, float] = {}
    items = iter(enumerate(work))

    async def client() -> None:
        for i, (sender, text, _) in items:
            sent_in[i] = time.perf_counter()
            await transport.inject(sender, text)
            await asyncio.sleep(0)  # the next message comes from the network: a loop turn

    await asyncio.gather(*(client() for _ in range(clients)))
    return sent_in


def latencies(transport: TimingTransport, work: list, sent_in: dict[int, float]) -> list[float]:
    return [
        (transport.sent_at[reply] - sent_in[i]) * 1000
        for i, (_, _, reply) in enumerate(work)
        if reply != "not allowed: set"
    ]


async def one_in_flight(app: App, transport: TimingTransport, work: list) -> list[float]:
    """Each message waits for its reply before the next goes in."""
    out = []
    for sender, text, reply in work:
        start = time.perf_counter()
        await transport.inject(sender, text)
        while reply not in transport.sent_at:
            await asyncio.sleep(0)
        out.append((transport.sent_at.pop(reply) - start) * 1000)
    return out


async def run(mode: str, n: int, data_dir: Path) -> dict:
    app, transport = await start_app(mode, data_dir)
    warm = workload(WARMUP, 10_000_000, seed=1)
    await feed(transport, warm, WINDOW)
    assert await app.drain(120), "outbox did not drain (warm-up)"
    transport.lines.clear()
    transport.sent_at.clear()
    transport.sent_count = 0

    work = workload(n, 0, seed=7)
    cpu, start = time.process_time(), time.perf_counter()
    sent_in = await feed(transport, work, WINDOW)
    assert await app.drain(120), "outbox did not drain"
    elapsed, cpu = transport.last_sent - start, time.process_time() - cpu
    got = Counter(transport.lines)
    want = expected_lines(work, notices=mode != "equal")
    assert got == want, f"replies differ: missing {want - got}, extra {got - want}"
    loaded = latencies(transport, work, sent_in)
    sends = transport.sent_count

    single = workload(SINGLE, 20_000_000, seed=3)
    single = [w for w in single if w[2] != "not allowed: set"]
    alone = await one_in_flight(app, transport, single)
    await app.stop()
    q, q1 = statistics.quantiles(loaded, n=100), statistics.quantiles(alone, n=100)
    return {
        "rate": n / elapsed,
        "cpu_us": cpu / n * 1e6,
        "p50": q[49],
        "p99": q[98],
        "p50_one": q1[49],
        "p99_one": q1[98],
        "sends": sends,
        "lines": sum(want.values()),
        "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(mode: str, n: int) -> None:
    logging.basicConfig(
        level=logging.INFO,  # as `lcbot run` (stderr: a pipe to the parent)
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(run(mode, n, Path(tmp)))))


def spread(values: list[float], fmt: str) -> str:
    values = sorted(values)
    median = statistics.median(values)
    return f"{median:{fmt}} (range {values[0]:{fmt}}–{values[-1]:{fmt}})"


def report(mode: str, n: int, runs: list[dict]) -> None:
    first = runs[0]
    print(
        f"\n{mode}: {n:,} messages, {first['lines']:,} reply and notice lines, "
        f"{first['sends']:,} sends"
    )
    print(f"  throughput   {spread([r['rate'] for r in runs], ',.0f')} msg/s")
    print(f"  CPU          {spread([r['cpu_us'] for r in runs], '.1f')} µs per message")
    print(
        f"  under load   p50 {spread([r['p50'] for r in runs], '.1f')} ms, "
        f"p99 {statistics.median(r['p99'] for r in runs):.1f} ms"
    )
    print(
        f"  one in flight p50 {spread([r['p50_one'] for r in runs], '.2f')} ms, "
        f"p99 {statistics.median(r['p99_one'] for r in runs):.2f} ms"
    )
    print(f"  peak RSS     {max(r['rss'] for r in runs):.1f} MiB (highest run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", choices=(*MODES, "all"), default="all")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.messages)
        return
    print(f"Python {sys.version.split()[0]}, {args.runs} runs per mode")
    results: dict[str, list[dict]] = {}
    modes = MODES if args.mode == "all" else (args.mode,)
    for _ in range(args.runs):  # modes alternate, so machine noise hits them alike
        for mode in modes:
            command = [sys.executable, __file__, "--child", mode, "--messages", str(args.messages)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{mode} run failed:\n{done.stdout}{done.stderr[-3000:]}")
            results.setdefault(mode, []).append(json.loads(done.stdout.splitlines()[-1]))
    for mode, runs in results.items():
        report(mode, args.messages, runs)
    if "default" in results and "authorize" in results:
        base = statistics.median(r["cpu_us"] for r in results["default"])
        hooked = statistics.median(r["cpu_us"] for r in results["authorize"])
        print(f"\nauthorize hook costs {100 * (hooked / base - 1):+.0f}% CPU per message")


if __name__ == "__main__":
    main()
