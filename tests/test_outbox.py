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


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_drainer_order_retry_backoff_and_dead(tmp_path):
    async def go():
        path = tmp_path / "lcbot.db"
        box = Outbox(path)
        box.open()
        transport = MemoryTransport()
        await transport.start(lambda m: None)
        clock = Clock()
        drainer = Drainer(box, transport, clock=clock, max_attempts=3)
        for i in range(3):
            box.put("alice", f"a{i}")
        box.put("bob", "b0")
        drainer.add(box.flush())

        transport.fail_next = 1
        await drainer.send_round()
        # alice's first send failed: alice waits, bob is not held up
        assert transport.sent == [("bob", "b0")]
        assert drainer.blocked_until["alice"] == 1001.0  # 1 s after the first failure
        await drainer.send_round()
        assert transport.sent == [("bob", "b0")]  # still blocked: the clock did not move
        clock.now = 1001.0
        transport.fail_next = 1
        await drainer.send_round()
        assert drainer.blocked_until["alice"] == 1003.0  # 2 s after the second failure
        clock.now = 1003.0
        await drainer.send_round()
        assert [t for r, t in transport.sent if r == "alice"] == ["a0", "a1", "a2"]
        box.flush()
        assert {r[2]: (r[3], r[4]) for r in rows(path)} == {
            "a0": ("sent", 2),
            "a1": ("sent", 0),
            "a2": ("sent", 0),
            "b0": ("sent", 0),
        }

        box.put("carol", "c0")
        box.put("carol", "c1")
        drainer.add(box.flush())
        transport.fail_next = 3
        for _ in range(3):
            await drainer.send_round()
            clock.now += 600
        await drainer.send_round()
        assert [t for r, t in transport.sent if r == "carol"] == ["c1"]  # c0 went dead
        box.flush()
        states = {r[2]: (r[3], r[4]) for r in rows(path)}
        assert states["c0"] == ("dead", 3) and states["c1"] == ("sent", 0)
        assert drainer.backoff(20) == 300.0  # capped
        box.close()

    asyncio.run(go())


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
