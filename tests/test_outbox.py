"""The durable outbox and the drainer: storage, order, retry with backoff, dead rows."""

from __future__ import annotations

import asyncio
import sqlite3

from lcbot.db import Database
from lcbot.drainer import Drainer
from lcbot.message import Feed
from lcbot.outbox import Outbox
from lcbot.transports.base import Address
from lcbot.transports.memory import MemoryTransport


def rows(path):
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT id, recipient, text, state, attempts FROM outbox ORDER BY id"
        ).fetchall()


def opened(path) -> tuple[Database, Feed, Outbox]:
    db = Database(path)
    db.open()
    feed = Feed()
    box = Outbox(db, feed)
    box.open()
    return db, feed, box


def test_put_is_stored_only_on_flush_and_survives_reopen(tmp_path):
    path = tmp_path / "db" / "lcbot.db"
    db, feed, box = opened(path)
    assert feed.take() == []
    box.put("alice", "one")
    box.put("bob", "two")
    assert rows(path) == []  # not yet committed
    assert feed.take() == []  # and not offered for sending
    assert box.flush()
    new = feed.take()
    assert [(m.recipient, m.text) for m in new] == [("alice", "one"), ("bob", "two")]
    assert [r[3] for r in rows(path)] == ["pending", "pending"]
    assert box.counts["pending"] == 2
    box.mark_sent([new[0].id])
    box.close()
    db.close()
    db, feed, again = opened(path)
    assert feed.take() == [] and feed.backlog == ["bob"]  # read by the drainer in windows
    pending = again.pending_for("bob", None, 10)
    assert [(m.recipient, m.text) for m in pending] == [("bob", "two")]
    assert again.counts == {"pending": 1, "sent": 1, "dead": 0, "retry": 0}
    again.put("carol", "three")
    assert again.flush()
    (m,) = feed.take()
    assert m.id > pending[0].id  # ids keep growing across runs
    again.close()
    db.close()


def test_puts_from_many_threads_lose_nothing(tmp_path):
    import threading

    db, feed, box = opened(tmp_path / "lcbot.db")
    threads = [
        threading.Thread(target=lambda t=t: [box.put(f"u{t}", f"{t}-{i}") for i in range(500)])
        for t in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box.flush()
    new = feed.take()
    assert len(new) == 4000 and len({m.id for m in new}) == 4000
    for t in range(8):  # per-sender order kept
        texts = [m.text for m in new if m.recipient == f"u{t}"]
        assert texts == [f"{t}-{i}" for i in range(500)]
    box.close()
    db.close()


def test_nothing_sent_while_transport_not_ready(tmp_path):
    async def go():
        db, feed, box = opened(tmp_path / "lcbot.db")
        transport = MemoryTransport()
        drainer = Drainer(feed, box, transport, lambda r: Address("name", r, r))
        box.put("alice", "hi")
        assert box.flush()
        task = asyncio.create_task(drainer.run())
        await asyncio.sleep(0.1)
        assert transport.sent == []
        transport.set_ready(True)
        for _ in range(50):
            if transport.sent:
                break
            await asyncio.sleep(0.01)
        assert transport.sent == [("alice", "hi")]
        task.cancel()
        box.close()
        db.close()

    asyncio.run(go())
