"""WAL checkpoints run in a thread of their own (lcbot.db.checkpoint), never in a commit of
the event loop's connection."""

from __future__ import annotations

import threading
import time

from lcbot.db import Database, transaction
from lcbot.db.checkpoint import LOOP_AUTOCHECKPOINT


def test_the_loop_connection_leaves_checkpoints_to_the_thread(tmp_path):
    db = Database(tmp_path / "lcbot.db")
    conn = db.open()
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == LOOP_AUTOCHECKPOINT
    conn.execute("CREATE TABLE blob (id INTEGER PRIMARY KEY, body TEXT)")
    base = db.path.stat().st_size
    for _ in range(30):  # ~3 MiB: past SQLite's default of 1,000 pages
        with transaction(conn):
            conn.executemany(
                "INSERT INTO blob (body) VALUES (?)", [("x" * 1000,) for _ in range(100)]
            )
    assert db.path.stat().st_size == base, "a commit on the loop's connection checkpointed"
    assert (tmp_path / "lcbot.db-wal").stat().st_size > 3_000_000
    deadline = time.monotonic() + 10
    while not (db.checkpointer.last and db.checkpointer.last[2] > 700):
        assert time.monotonic() < deadline, "the checkpoint thread did not checkpoint"
        db.checkpointer.wake()
        time.sleep(0.02)
    busy, frames, done = db.checkpointer.last
    assert busy == 0 and done == frames
    assert db.path.stat().st_size > base + 3_000_000  # the WAL's pages are in the database
    db.close()
    assert not [t for t in threading.enumerate() if t.name == "lcbot-checkpoint"]
