"""The durable outbox and the drainer: storage, order, retry with backoff, dead rows."""

from __future__ import annotations

import asyncio
import sqlite3

from lcbot.drainer import Drainer
from lcbot.outbox import Outbox
from lcbot.transports.memory import MemoryTransport


def rows(path):
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT id, recipient, text, state, attempts FROM outbox ORDER BY id"
        ).fetchall()


def test_put_is_stored_only_on_flush_and_survives_reopen(tmp_path):
    path = tmp_path / "db" / "lcbot.db"
    box = Outbox(path)
    assert box.open() == []
    box.put("alice", "one")
    box.put("bob", "two")
    assert rows(path) == []  # not yet committed
    new = box.flush()
    assert [(m.recipient, m.text) for m in new] == [("alice", "one"), ("bob", "two")]
    assert [r[3] for r in rows(path)] == ["pending", "pending"]
    box.mark_sent([new[0].id])
    box.close()
    again = Outbox(path)
    pending = again.open()
    assert [(m.recipient, m.text) for m in pending] == [("bob", "two")]
    again.put("carol", "three")
    (m,) = again.flush()
    assert m.id > pending[0].id  # ids keep growing across runs
    again.close()


def test_puts_from_many_threads_lose_nothing(tmp_path):
    import threading

    box = Outbox(tmp_path / "lcbot.db")
    box.open()
    threads = [
        threading.Thread(target=lambda t=t: [box.put(f"u{t}", f"{t}-{i}") for i in range(500)])
        for t in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    new = box.flush()
    assert len(new) == 4000 and len({m.id for m in new}) == 4000
    for t in range(8):  # per-sender order kept
        texts = [m.text for m in new if m.recipient == f"u{t}"]
        assert texts == [f"{t}-{i}" for i in range(500)]
    box.close()


def test_nothing_sent_while_transport_not_ready(tmp_path):
    async def go():
        box = Outbox(tmp_path / "lcbot.db")
        box.open()
        transport = MemoryTransport()
        drainer = Drainer(box, transport)
        box.put("alice", "hi")
        drainer.add(box.flush())
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

    asyncio.run(go())
