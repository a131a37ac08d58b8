"""Latency while another process holds the database's write lock (``BEGIN IMMEDIATE``).

A bot (in-process, memory transport, HTTP listener on 127.0.0.1) answers ``whoami`` and
``GET /healthz`` first with a free database, then while a second process holds the write
lock for ``--hold`` seconds (20 by default). Prints p50 / max of each, and how long after
the lock is released the replies sent meanwhile are stored.

Run by hand:  python benchmarks/bench_lock.py [--hold 20] [--requests 40]
Target (issue 10): neither is delayed by more than 100 ms while the lock is held.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from lcbot.testing import Harness

HOLD = """\
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
print("released", flush=True)
"""


async def measure(bot: Harness, url: str, requests: int, spread: float) -> tuple[list, list]:
    """``requests`` whoami round trips and /healthz GETs, spread over ``spread`` seconds (ms)."""
    replies, health = [], []
    async with aiohttp.ClientSession() as http:
        for _ in range(requests):
            start = time.perf_counter()
            async with http.get(url) as reply:
                assert reply.status == 200
            health.append((time.perf_counter() - start) * 1000)
            before = len(bot.transport.sent)
            start = time.perf_counter()
            await bot.transport.inject("me", "whoami")
            while ("me", "me (root)") not in bot.transport.sent[before:]:
                await asyncio.sleep(0.001)
            replies.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(spread / requests)
    return replies, health


def show(label: str, values: list[float]) -> str:
    return f"{label} p50 {statistics.median(values):6.1f} ms   max {max(values):6.1f} ms"


async def main(hold: float, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = {"ingress": {"enabled": True, "listen": "127.0.0.1:0"}}
        bot = await Harness(Path(tmp), users={"me": "root"}, config=config).start()
        url = f"http://127.0.0.1:{bot.app.ingress.port}/healthz"
        replies, health = await measure(bot, url, requests, 1.0)
        print(f"free     {show('whoami', replies)}   {show('/healthz', health)}")
        locker = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(bot.app.db.path), str(hold)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert locker.stdout.readline().strip() == "locked"
        replies, health = await measure(bot, url, requests, hold * 0.8)
        print(f"locked   {show('whoami', replies)}   {show('/healthz', health)}")
        print(f"         ({requests} of each while the lock was held for {hold:.0f} s)")
        assert locker.stdout.readline().strip() == "released"
        released = time.perf_counter()
        while bot.app.outbox.dirty:
            await asyncio.sleep(0.005)
        print(f"stored   {(time.perf_counter() - released) * 1000:.0f} ms after the release")
        locker.wait()
        await bot.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"Python {sys.version.split()[0]}")
    asyncio.run(main(args.hold, args.requests))
