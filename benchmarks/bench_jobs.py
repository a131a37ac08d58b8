"""Jobs: the round trip of a job command, and what 200 connected jobs cost the bot.

An in-process bot (the real App on ``MemoryTransport``, pacing off, ingress on 127.0.0.1)
and real job processes (``lcbot.job``). A round trip is one chat message in
(``transport.inject("me", "bench echo:N")``) → the handler in the job process → the
reply ``pong N`` handed to the transport's ``send``; one at a time, after a warm-up, over
the local socket and over HTTP (``POST /jobs/exchange``, long poll), and for comparison
the same command as an in-process plugin (the floor of any reply: the outbox's group
commit, the drainer). Each figure is the
median of RUNS runs (their range in brackets); CPU is the bot's process time and the job
process's (utime + stime) per round trip. Then FLEET jobs connect from one process (each
with a command and a status): the bot's extra RSS, and its CPU while they sit idle.

Run by hand:  python benchmarks/bench_jobs.py [--trips N] [--fleet N]
Targets (issue 13): local p50 ≤ 5 ms; 200 jobs ≤ 40 MiB extra RSS, ≤ 2 % of a core idle.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from lcbot import hookimpl
from lcbot.testing import Harness
from lcbot.transports.base import Address
from lcbot.transports.memory import MemoryTransport

RUNS = 5
WARMUP = 50
TOKEN = "bench-job-token"
IDLE = 10.0  # seconds the fleet sits idle while the bot's CPU is measured

JOB = """
import sys, time
from lcbot import job
j = job.connect(sys.argv[1])

@j.command("echo", help="bench")
def echo(ctx):
    return f"pong {ctx.value}"

while True:
    time.sleep(3600)
"""

FLEET = """
import sys, time
from lcbot import job
jobs = [job.connect(f"fleet{i}") for i in range(int(sys.argv[1]))]
for j in jobs:
    j.command("echo", help="bench")(lambda ctx: "pong")
    j.status("idle")
while True:
    time.sleep(3600)
"""


class Echo:
    """The same command as a plugin in the bot: the floor every reply pays (dispatch,
    outbox group commit, drainer), without a job."""

    @hookimpl
    def register_commands(self, registry):
        @registry.command("plugin", help="bench")
        async def plugin(ctx):
            return f"pong {ctx.extra.split(':')[1]}"


class TimingTransport(MemoryTransport):
    """Records when each reply line was handed to it; wakes the one awaited."""

    def __init__(self) -> None:
        super().__init__(record=False)
        self.want: str | None = None
        self.arrived = asyncio.Event()
        self.at = 0.0

    async def send(self, address: Address, text: str) -> None:
        now = time.perf_counter()
        if self.want is not None and self.want in text.split("\n"):
            self.at = now
            self.arrived.set()


def cpu_of(pid: int) -> float:
    """Seconds of CPU (user + system) process ``pid`` used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def spawn(folder: Path, script: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
    path = folder / f"{script}.py"
    path.write_text(textwrap.dedent(JOB if script == "job" else FLEET))
    return subprocess.Popen(
        [sys.executable, str(path), *args],
        cwd=folder,
        env={**os.environ, "LCBOT_CONFIG": str(folder / "lcbot.toml"), **env},
        stdout=subprocess.DEVNULL,
    )


async def until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


async def trips(bot: Harness, transport: TimingTransport, job: str, n: int, pid: int):
    """``n`` round trips of ``job echo``: (latencies in ms, bot CPU µs, job CPU µs) each."""
    latencies = []
    cpu, job_cpu = time.process_time(), cpu_of(pid)
    for i in range(n):
        transport.want = f"pong {i}"
        transport.arrived.clear()
        start = time.perf_counter()
        await transport.inject("me", f"{job} echo:{i}")
        await asyncio.wait_for(transport.arrived.wait(), 30)
        latencies.append((transport.at - start) * 1000)
    cpu, job_cpu = time.process_time() - cpu, cpu_of(pid) - job_cpu
    return latencies, cpu / n * 1e6, job_cpu / n * 1e6


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    values = sorted(values)
    mid = fmt.format(statistics.median(values))
    return f"{mid} [{fmt.format(values[0])}–{fmt.format(values[-1])}]"


async def measure_trips(bot, transport, label: str, job: str, pid: int, n: int) -> None:
    await trips(bot, transport, job, WARMUP, pid)
    runs = [await trips(bot, transport, job, n, pid) for _ in range(RUNS)]
    p50 = [statistics.quantiles(r[0], n=100)[49] for r in runs]
    p99 = [statistics.quantiles(r[0], n=100)[98] for r in runs]
    print(
        f"  {label:<6} p50 {spread(p50)} ms   p99 {spread(p99)} ms   "
        f"CPU/trip: bot {spread([r[1] for r in runs], '{:.0f}')} µs, "
        f"job {spread([r[2] for r in runs], '{:.0f}')} µs"
    )


async def main(n: int, fleet: int) -> None:
    logging.disable(logging.WARNING)
    os.environ["LCBOT_JOB_TOKEN"] = TOKEN
    pacing = {"per_second": 0, "per_minute": 0, "per_recipient_gap": 0}
    config = {"ingress": {"enabled": True, "listen": "127.0.0.1:0"}, "ratelimit": pacing}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        transport = TimingTransport()
        bot = Harness(folder, [Echo()], [("me", "root")], config, transport=transport)
        await bot.start()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            app = bot.app
            assert app.ingress is not None
            url = f"http://127.0.0.1:{app.ingress.port}"
            gc.collect()
            base_rss = rss_mib()
            local = spawn(folder, "job", "bench")
            remote = spawn(folder, "job", "rbench", LCBOT_URL=url, LCBOT_JOB_TOKEN=TOKEN)
            procs += [local, remote]
            await until(lambda: {"bench", "rbench"} <= set(app.jobs.sessions), "jobs attached")
            print(f"round trip of a job command, {n} per run, {RUNS} runs (median [range])")
            await measure_trips(bot, transport, "plugin", "plugin", os.getpid(), n)
            await measure_trips(bot, transport, "local", "bench", local.pid, n)
            await measure_trips(bot, transport, "HTTP", "rbench", remote.pid, n)

            gc.collect()
            before = rss_mib()
            procs.append(spawn(folder, "fleet", str(fleet)))
            await until(lambda: len(app.jobs.sessions) >= fleet + 2, f"{fleet} jobs", 120)
            await asyncio.sleep(3.0)  # their connect notices delivered, status lines in
            gc.collect()
            extra = rss_mib() - before
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.sleep(IDLE)
            idle = (time.process_time() - cpu) / (time.perf_counter() - wall) * 100
            print(f"{fleet} connected jobs (one process, local socket)")
            print(f"  bot RSS +{extra:.1f} MiB ({before - base_rss:+.1f} MiB for the first two)")
            print(f"  bot CPU idle {idle:.2f} % of a core over {IDLE:.0f} s")
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
            await bot.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=300)
    parser.add_argument("--fleet", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.trips, args.fleet))
