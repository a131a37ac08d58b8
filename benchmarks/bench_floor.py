"""The floor under ``bench_dispatch.py``: what this machine does with no bot at all.

1. Bare asyncio: the same 256 concurrent clients and one loop turn per message as the
   dispatch benchmark, each message "handled" by a plain coroutine that appends its reply
   to a list. CPU µs per message.
2. Raw sqlite3 (WAL, ``synchronous=NORMAL``, as lcbot's database): per batch, insert the
   rows (``executemany``, the outbox's columns), mark them sent (``executemany`` by id)
   and commit — at the batch sizes lcbot's writer sees. CPU µs per row.
3. The sum for the dispatch benchmark's mix: one loop-turn message plus ROWS_PER_MESSAGE
   durable rows (a reply, notices: 1.87 in ``default``; plus one audit row each).

Run by hand:  python benchmarks/bench_floor.py [--messages N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

WINDOW = 256
BATCHES = (16, 64, 256)
ROWS_PER_MESSAGE = {"default": 1.87 + 1, "equal": 1.0 + 1}  # outbox rows + the audit row


async def bare(n: int) -> float:
    replies: list[str] = []

    async def handle(text: str) -> None:
        replies.append("ok " + text)

    items = iter(range(n))

    async def client() -> None:
        for i in items:
            await handle(str(i))
            await asyncio.sleep(0)

    cpu = time.process_time()
    await asyncio.gather(*(client() for _ in range(WINDOW)))
    cpu = time.process_time() - cpu
    assert len(replies) == n
    return cpu / n * 1e6


def sqlite_rows(n: int, batch: int, path: Path) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY, recipient TEXT, text TEXT, kind TEXT,"
        " state TEXT DEFAULT 'pending', attempts INTEGER DEFAULT 0, created REAL,"
        " priority INTEGER DEFAULT 0, file TEXT, file_size INTEGER DEFAULT 0, sent_at REAL)"
    )
    db.execute(  # lcbot's one pending index
        "CREATE INDEX outbox_pending_to ON outbox (recipient, priority, id) WHERE state = 'pending'"
    )
    cpu, next_id = time.process_time(), 1
    for start in range(0, n, batch):
        rows = [
            (i, f"user{i % 100}", f"ok {i}", "reply", time.time(), 0, None, 0)
            for i in range(next_id + start, next_id + min(start + batch, n))
        ]
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO outbox (id, recipient, text, kind, created, priority, file, file_size)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.executemany(
            "UPDATE outbox SET state = 'sent', sent_at = ? WHERE id = ?",
            [(time.time(), row[0]) for row in rows],
        )
        db.execute("COMMIT")
    cpu = time.process_time() - cpu
    db.close()
    return cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {args.runs} runs")
    loops = sorted(asyncio.run(bare(args.messages)) for _ in range(args.runs))
    print(f"bare asyncio   {statistics.median(loops):.2f} µs CPU per message "
          f"(range {loops[0]:.2f}–{loops[-1]:.2f})")  # fmt: skip
    per_row: dict[int, float] = {}
    for batch in BATCHES:
        with tempfile.TemporaryDirectory() as tmp:
            runs = sorted(
                sqlite_rows(args.messages, batch, Path(tmp) / f"floor{i}.db")
                for i in range(args.runs)
            )
        per_row[batch] = statistics.median(runs)
        print(f"sqlite rows    {per_row[batch]:.2f} µs CPU per row inserted, marked sent and "
              f"committed, batches of {batch} (range {runs[0]:.2f}–{runs[-1]:.2f})")  # fmt: skip
    loop = statistics.median(loops)
    for mode, rows in ROWS_PER_MESSAGE.items():
        low, high = (loop + rows * per_row[b] for b in (BATCHES[-1], BATCHES[0]))
        print(f"floor {mode:8} {low:.1f}–{high:.1f} µs CPU per message "
              f"(one loop turn + {rows:.2f} durable rows)")  # fmt: skip


if __name__ == "__main__":
    main()
