"""Long texts and large backlogs: splitting cost, drain time and memory.

1. ``split_text``: CPU ms per call and µs per part for texts of 100 KB to 10 MB cut into
   2,000-character parts (no ``max_parts`` cap: the whole text, to show the cost is linear).
2. Backlog: a data dir pre-filled with pending outbox rows (10 k, 30 k and ``--rows`` to one
   recipient, and ``--rows`` spread over 100), then a bot (memory transport, no pacing)
   started on it; wall and CPU seconds from the bot's start until every row is sent (its
   start included: reading the counts and who has rows pending is part of the drain), CPU
   µs per row, and the growth of the process's peak RSS. Each run is a fresh child process,
   so peaks do not mix; median [min–max] of ``--runs``.
3. One long message: a 1 MB and a 10 MB text with no line break put into the outbox of a
   bot (no pacing); CPU ms until all its parts are sent, and how many were sent.

Run by hand:  python benchmarks/bench_backlog.py [--rows N] [--runs N] [--code DIR] [--only]
``--code DIR`` runs the children on another checkout of lcbot (to compare two versions);
``--only`` runs the backlog part alone.
Targets: splitting linear (issue 11); 100 k rows to one recipient drained in ≤ 0.5 s and
≤ 40 MiB of peak RSS growth, linear in the rows (CPU µs per row flat from 10 k to 100 k)
and within 2 × the time of 100 recipients (issue 16).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_PACING = {"per_second": 0, "per_minute": 0, "per_recipient_gap": 0}
PEOPLE = [f"user{i:03d}" for i in range(100)]


def split_figures() -> list[tuple[int, float, int]]:
    """``(size, CPU seconds per call, parts)`` for growing texts, 50-character lines."""
    try:
        from lcbot.text import split_text
    except ImportError:  # an older checkout
        from lcbot.outbox import split_text  # type: ignore[no-redef]
    line = "x" * 49 + "\n"
    figures = []
    for size in (100_000, 1_000_000, 10_000_000):
        text = line * (size // len(line))
        start = time.process_time()
        parts = split_text(text, 2000)
        spent = time.process_time() - start
        figures.append((size, spent, len(parts)))
        if spent > 20:  # quadratic: the next size would take hours
            break
    return figures


def prefill(db: Path, rows: int, recipients: list[str]) -> None:
    from lcbot.db import connect

    connect(db).close()  # lcbot's schema (migrations)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN")
    now = time.time()
    conn.executemany(
        "INSERT INTO outbox (id, recipient, text, kind, created, priority) "
        "VALUES (?, ?, ?, 'reply', ?, 0)",
        ((i + 1, recipients[i % len(recipients)], f"row {i}", now) for i in range(rows)),
    )
    conn.execute("COMMIT")
    conn.close()


async def drain(folder: Path, rows: int, spread: int) -> dict[str, float]:
    from lcbot.testing import Harness
    from lcbot.transports.memory import MemoryTransport

    recipients = PEOPLE[:spread]
    (folder / "data").mkdir(parents=True)
    prefill(folder / "data" / "lcbot.db", rows, recipients)
    users = {name: "user" for name in PEOPLE}
    transport = MemoryTransport(record=False)
    harness = Harness(folder, users=users, config={"ratelimit": NO_PACING}, transport=transport)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = time.perf_counter(), time.process_time()
    await harness.start()
    try:
        await harness.settle(timeout=600)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await harness.stop()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    conn = sqlite3.connect(folder / "data" / "lcbot.db")
    left = conn.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone()[0]
    conn.close()
    return {"wall": wall, "cpu": cpu, "rss_mib": grown / 1024, "sends": transport.sent_count,
            "left": left}  # fmt: skip


async def long_message(folder: Path, size: int) -> dict[str, float]:
    from lcbot.testing import Harness
    from lcbot.transports.memory import MemoryTransport

    transport = MemoryTransport(record=False)
    config = {"ratelimit": NO_PACING}
    harness = Harness(folder, users={"me": "root"}, config=config, transport=transport)
    await harness.start()
    try:
        cpu = time.process_time()
        harness.app.outbox.put("me", "L" * size)
        await harness.settle(timeout=600)
        cpu = time.process_time() - cpu
    finally:
        await harness.stop()
    return {"cpu": cpu, "sends": transport.sent_count}


def child(args: argparse.Namespace) -> None:
    import logging

    logging.disable(logging.WARNING)
    if args.child == "split":
        print(json.dumps(split_figures()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.child.startswith("long"):
            size = int(args.child[4:])
            print(json.dumps(asyncio.run(long_message(Path(tmp), size))))
            return
        spread = 1 if args.child == "one" else 100
        print(json.dumps(asyncio.run(drain(Path(tmp), args.rows, spread))))


def run_child(
    kind: str, args: argparse.Namespace, timeout: float | None = None, rows: int = 0
) -> object:
    env = dict(os.environ)
    if args.code:
        env["PYTHONPATH"] = str(Path(args.code).resolve())
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--rows", str(rows or args.rows)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if done.returncode:
        sys.exit(f"child {kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread_of(values: list[float], fmt: str) -> str:
    low, mid, high = (fmt.format(f(values)) for f in (min, statistics.median, max))
    return f"{mid} [{low}–{high}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", action="store_true", help="the backlog part alone")
    parser.add_argument("--code", help="another lcbot checkout to run the children on")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if not args.only:
        print(f"split_text, 2,000-character parts{' (' + args.code + ')' if args.code else ''}")
        for size, spent, parts in run_child("split", args):  # type: ignore[union-attr]
            per_part = spent / parts * 1e6
            print(f"  {size / 1e6:6.1f} MB  {spent * 1e3:9.1f} ms CPU  {per_part:8.1f} µs/part")
    print(f"backlog, no pacing, from the start to the last send: median [min–max] of {args.runs}")
    print("  targets: 100 k rows to 1 recipient ≤ 0.5 s and ≤ 40 MiB; µs/row flat in the rows")
    sizes = sorted({n for n in (10_000, 30_000, args.rows) if n <= args.rows})
    cases = [("one", n, f"1 recipient    {n:>7,}") for n in sizes]
    cases.append(("hundred", args.rows, f"100 recipients {args.rows:>7,}"))
    for kind, rows, label in cases:
        runs = [run_child(kind, args, rows=rows) for _ in range(args.runs)]
        assert all(r["left"] == 0 for r in runs), runs  # type: ignore[index]
        wall = [r["wall"] for r in runs]  # type: ignore[index]
        cpus = [r["cpu"] for r in runs]  # type: ignore[index]
        per_row = [c / rows * 1e6 for c in cpus]
        rss = [r["rss_mib"] for r in runs]  # type: ignore[index]
        print(
            f"  {label}  {spread_of(wall, '{:.2f}')} s  CPU {spread_of(cpus, '{:.2f}')} s  "
            f"{spread_of(per_row, '{:.1f}')} µs CPU/row  peak RSS +{spread_of(rss, '{:.0f}')} MiB"
            f"  ({runs[0]['sends']:,} sends)"  # type: ignore[index]
        )
    if args.only:
        return

    print("one long message (no line break), no pacing")
    for size in (1_000_000, 10_000_000):
        try:
            figures = run_child(f"long{size}", args, timeout=300)
        except subprocess.TimeoutExpired:
            print(f"  {size / 1e6:4.0f} MB  not sent within 300 s")
            continue
        cpu, sends = figures["cpu"], figures["sends"]  # type: ignore[index]
        print(f"  {size / 1e6:4.0f} MB  {cpu * 1e3:9.1f} ms CPU  {sends:,} parts sent")


if __name__ == "__main__":
    main()
