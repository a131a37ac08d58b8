"""lcbot.db.rows: many rows in few multi-row statements, in order, with every value."""

from __future__ import annotations

import sqlite3

import pytest

from lcbot.db.rows import CHUNK, insert_rows


@pytest.mark.parametrize("count", [0, 1, 2, 3, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 37])
def test_insert_rows_stores_every_row_in_order_in_few_statements(count):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB)")
    statements = []
    db.set_trace_callback(statements.append)
    rows = [(f"row {i}", i / 3, None if i % 2 else b"x") for i in range(count)]
    insert_rows(db, "INSERT INTO t (a, b, c)", rows)
    db.set_trace_callback(None)
    statements = [s for s in statements if s.startswith("INSERT")]  # not the implicit BEGIN
    assert db.execute("SELECT a, b, c FROM t ORDER BY id").fetchall() == rows
    full, rest = divmod(count, CHUNK)
    assert len(statements) == full + bin(rest).count("1")  # 64s, then powers of two


def test_insert_or_replace_keeps_the_last_row_of_a_key():
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE k (key TEXT PRIMARY KEY, n INTEGER)")
    insert_rows(db, "INSERT OR REPLACE INTO k", [("a", 1), ("b", 2)])
    insert_rows(db, "INSERT OR REPLACE INTO k", [("a", 3)])
    assert db.execute("SELECT key, n FROM k ORDER BY key").fetchall() == [("a", 3), ("b", 2)]


def test_touch_moves_last_seen_of_the_named_firing_alerts_forward_only(tmp_path):
    from lcbot.db import Database, transaction
    from lcbot.db import firing as sql

    db = Database(tmp_path / "lcbot.db")
    db.open()
    conn = db.conn
    with transaction(conn):
        for i in range(1, 101):
            conn.execute(
                "INSERT INTO firing (id, ident, level, text, first_seen, last_seen) "
                "VALUES (?, ?, 'warning', 'x', 0, 100)",
                (i, f"k{i}"),
            )
        seen = [(i, 100.0 + i) for i in range(1, 71)] + [(99, 50.0)]  # 99: never back
        sql.touch(conn, seen)
    got = dict(conn.execute("SELECT id, last_seen FROM firing").fetchall())
    assert got == {i: (100.0 + i if i <= 70 else 100.0) for i in range(1, 101)}
    db.close()
