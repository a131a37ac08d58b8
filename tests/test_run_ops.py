"""``lcbot.message.run_ops``: recorded writes run in order; a run of one op that offers
``many`` goes as one call (an audit row per command is one ``executemany`` per commit)."""

from __future__ import annotations

import sqlite3

from lcbot.db import audit as audit_sql
from lcbot.db.migrations import migrate
from lcbot.message import run_ops


def test_runs_of_a_batchable_op_go_as_one_call_in_order():
    calls = []

    def one(conn, x):
        calls.append(("one", x))

    def plain(conn, x):
        calls.append(("plain", x))

    one.many = lambda conn, arglist: calls.append(("many", [a for (a,) in arglist]))
    run_ops(None, [(one, (1,)), (one, (2,)), (plain, (3,)), (one, (4,)), (plain, (5,))])
    assert calls == [("many", [1, 2]), ("plain", 3), ("many", [4]), ("plain", 5)]


def test_audit_rows_stored_in_one_batch_keep_their_order():
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    row = (1.0, "alice", None, "status", None, "allowed", "", "ok", 0.0, "console", None)
    rows = [(row[0] + i, *row[1:3], f"cmd{i}", *row[4:]) for i in range(5)]
    run_ops(conn, [(audit_sql.insert, (r,)) for r in rows])
    stored = conn.execute("SELECT command FROM audit ORDER BY id").fetchall()
    assert [c for (c,) in stored] == [f"cmd{i}" for i in range(5)]
