"""The drainer's backlog and the outbox SQL it reads and marks with: a real SQLite file."""

from __future__ import annotations

from lcbot.backlog import Backlog
from lcbot.db import Database
from lcbot.db import outbox as sql
from lcbot.message import Feed, Message
from lcbot.outbox import Outbox


def filled(tmp_path, rows: list[tuple[str, int]]) -> tuple[Database, Outbox]:
    """An outbox with ``(recipient, priority)`` rows stored (ids 1, 2, … in that order)."""
    db = Database(tmp_path / "lcbot.db")
    db.open()
    box = Outbox(db, Feed())
    box.open()
    for i, (recipient, priority) in enumerate(rows):
        box.put(recipient, f"m{i + 1}", "reply" if priority == 0 else "alert", priority)
    assert box.flush()
    return db, box


def states(db: Database) -> dict[int, str]:
    assert db.conn is not None
    return dict(db.conn.execute("SELECT id, state FROM outbox").fetchall())


def test_pending_for_walks_priorities_in_order_across_windows(tmp_path):
    rows = [("bob", i % 3) for i in range(30)] + [("eve", 0)] * 5
    db, box = filled(tmp_path, rows)
    expected = sorted((p, i + 1) for i, (r, p) in enumerate(rows) if r == "bob")
    got, after = [], None
    while True:
        window = box.pending_for("bob", after, 4)
        got += [(m.priority, m.id) for m in window]
        assert all(m.recipient == "bob" for m in window)
        if len(window) < 4:
            break
        after = (window[-1].priority, window[-1].id)
        assert box.pending_after("bob", after) == len(expected) - len(got)
    assert got == expected
    assert box.pending_after("bob", None) == 30
    assert box.pending_after("bob", (2, 30)) == 0
    db.close()


def test_mark_sent_marks_exactly_the_ids_given_ranges_or_not(tmp_path):
    db, _box = filled(tmp_path, [("bob", 0)] * 40)
    assert db.conn is not None
    ids = [3, 4, 5, 6, 7, 9, 20, 21, 22, 23, 24, 25, 30, 31, 5, 40]  # runs, strays, a repeat
    with db.conn:
        sql.mark_sent(db.conn, ids, 1.0)
    marked = {i for i, state in states(db).items() if state == "sent"}
    assert marked == set(ids)
    assert sql.id_runs(ids) == ([(3, 7), (20, 25)], [9, 30, 31, 40])
    db.close()


def test_outbox_marks_sent_through_a_commit(tmp_path):
    db, box = filled(tmp_path, [("bob", 0)] * 10)
    box.mark_sent([1, 2, 3, 4, 5, 6, 8])
    assert box.flush()
    assert [i for i, s in sorted(states(db).items()) if s == "pending"] == [7, 9, 10]
    assert box.counts["sent"] == 7 and box.counts["pending"] == 3
    db.close()


def message(id_: int, priority: int = 0, stored: bool = True) -> Message:
    return Message(id_, "bob", f"m{id_}", priority=priority, stored=stored)


def test_backlog_window_refills_in_order_and_merges_unstored_ones():
    rows = {i: message(i, priority=i % 2) for i in range(1, 41)}
    loads = []

    def load(recipient, after, limit):
        loads.append((after, limit))
        keys = sorted((m.priority, m.id) for m in rows.values())
        keys = [k for k in keys if after is None or k > after][:limit]
        return [rows[i] for _, i in keys]

    backlog = Backlog(load, window=6)
    backlog.mark_backlog(["bob"])
    backlog.add(message(100, priority=1, stored=False))  # a reply sent while locked
    backlog.refill("bob")
    queue = backlog.queue("bob")
    assert [(p, i) for p, i, _ in queue] == sorted((p, i) for p, i, _ in queue)
    assert len(queue) == 7 and queue[-1][1] == 100  # the unstored one kept its place
    sent = []
    while "bob" in backlog.queues:
        front = [entry[2] for entry in backlog.queue("bob")[:2]]
        sent += [(m.priority, m.id) for m in front]
        backlog.drop("bob", front)
        backlog.refill("bob")
    assert sent == sorted([(m.priority, m.id) for m in rows.values()] + [(1, 100)])
    assert not backlog.in_database and len(backlog) == 0


def test_backlog_drop_of_messages_not_at_the_front():
    backlog = Backlog(lambda recipient, after, limit: [], window=10)
    messages = [message(i) for i in range(1, 6)]
    for m in messages:
        backlog.add(m)
    backlog.drop("bob", [messages[3], messages[1]])  # dead ones, say: not the front
    assert [e[1] for e in backlog.queue("bob")] == [1, 3, 5]
    backlog.drop("bob", [messages[0], messages[2]])
    assert [e[1] for e in backlog.queue("bob")] == [5]
    backlog.add(message(2, stored=False))  # sorts before: inserted in its place
    assert [e[1] for e in backlog.queue("bob")] == [2, 5]
    backlog.drop("bob", [backlog.queue("bob")[0][2], messages[4]])
    assert "bob" not in backlog.queues and backlog._stored == {}


def test_start_counts_and_recipients_with_pending_rows(tmp_path):
    db, box = filled(tmp_path, [("bob", 0), ("eve", 1), ("al", 0), ("bob", 2), ("zed", 0)])
    box.mark_sent([3])
    box.mark_failed(Message(5, "zed", "m5"), "no", dead=True)
    assert box.flush()
    assert db.conn is not None
    assert sorted(sql.pending_recipients(db.conn)) == ["bob", "eve"]
    assert sql.counts(db.conn) == {"pending": 3, "sent": 1, "dead": 1, "retry": 0}
    db.close()
