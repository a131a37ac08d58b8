"""The HTTP listener's group commit (``lcbot.alert_store``) on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from lcbot import alert_store
from lcbot.alert_store import AlertStore
from lcbot.alerts import make_alert
from lcbot.db import DB_NAME, Database, connect


def rows(path) -> list[tuple]:
    """What another connection sees: committed rows only."""
    with sqlite3.connect(path) as other:
        return other.execute("SELECT id, text, state FROM alerts ORDER BY id").fetchall()


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / DB_NAME)
    with database.opened():
        yield database


def test_concurrent_requests_share_one_commit_and_a_refused_one_rolls_back_alone(db):
    taken: list[list[str]] = []
    store = AlertStore(db, lambda alerts: taken.append([a.text for a in alerts]))
    db.conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON alerts WHEN NEW.text = 'bad' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    first = [make_alert("one"), make_alert("two")]
    second = [make_alert("fine"), make_alert("bad")]
    third = [make_alert("three")]

    async def go():
        return await asyncio.gather(
            store.store(first), store.store(second), store.store(third), return_exceptions=True
        )

    ids_first, refused, ids_third = asyncio.run(go())
    assert isinstance(refused, sqlite3.IntegrityError) and "refused" in str(refused)
    stored = rows(db.path)
    assert [text for _, text, _ in stored] == ["one", "two", "three"]  # order kept
    assert all(state == "new" for _, _, state in stored)
    assert ids_first + ids_third == [i for i, _, _ in stored]
    assert [a.id for a in first + third] == ids_first + ids_third
    assert taken == [["one", "two"], ["three"]]  # to the router once stored, not the refused


def test_ids_come_only_after_the_commit(db):
    seen: list[list[tuple]] = []
    store = AlertStore(db, lambda alerts: seen.append(rows(db.path)))

    async def go():
        return await store.store([make_alert("durable")])

    ids = asyncio.run(go())
    assert seen == [[(ids[0], "durable", "new")]]  # on disk when the router is handed it


def test_locked_database_answers_none_and_stores_nothing(db, monkeypatch):
    monkeypatch.setattr(alert_store, "BUSY_TIMEOUT", 0.3)
    store = AlertStore(db, lambda alerts: None)
    other = connect(db.path)
    other.execute("BEGIN IMMEDIATE")
    try:
        assert asyncio.run(store.store([make_alert("locked out")])) is None
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert rows(db.path) == []


def test_a_lock_released_in_time_stores_the_request(db):
    store = AlertStore(db, lambda alerts: None)
    other = connect(db.path)
    other.execute("BEGIN IMMEDIATE")

    async def go():
        asyncio.get_running_loop().call_later(0.2, other.execute, "ROLLBACK")
        return await store.store([make_alert("after the lock")])

    try:
        ids = asyncio.run(go())
    finally:
        other.close()
    assert [(i, t) for i, t, _ in rows(db.path)] == [(ids[0], "after the lock")]
