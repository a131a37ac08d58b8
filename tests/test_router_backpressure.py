"""``AlertRouter.submit`` from another thread waits while ``MAX_WAITING`` alerts wait to be
routed (at most ``MAX_WAIT``, then the alert joins anyway); the loop's own thread never
waits. Nothing is dropped either way."""

from __future__ import annotations

import threading
import time

import pytest

from lcbot import router as router_module
from lcbot.alerts import AlertSettings, make_alert
from lcbot.db import Database
from lcbot.router import AlertRouter
from lcbot.users import Directory, Pri, User


class Writer:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def put(self, recipient, text, *rest) -> None:
        self.texts.append(text)

    def record(self, *args) -> None:
        pass


class People:
    directory = Directory([User("alice", Pri.ROOT)])
    rooms = ()

    def reachable(self, user) -> bool:
        return True


@pytest.fixture
def router(tmp_path, monkeypatch):
    monkeypatch.setattr(router_module, "MAX_WAITING", 5)
    db = Database(tmp_path / "lcbot.db")
    db.open()
    settings = AlertSettings(routes={"warning": Pri.USER})
    yield AlertRouter(settings, db, Writer(), People(), lambda a: True)
    db.close()


def raise_in_thread(router, count: int) -> threading.Thread:
    def produce() -> None:
        for i in range(count):
            router.submit(make_alert(f"from a thread {i}", "warning"))

    thread = threading.Thread(target=produce)
    thread.start()
    return thread


def test_a_thread_waits_until_the_router_takes_the_waiting_alerts(router, monkeypatch):
    monkeypatch.setattr(router_module, "MAX_WAIT", 30.0)
    thread = raise_in_thread(router, 8)
    time.sleep(0.3)
    assert thread.is_alive() and router.submitted == 5  # the sixth waits
    router.route_pending()  # takes the five: the thread goes on
    thread.join(10)
    assert not thread.is_alive()
    router.route_pending()
    assert router.writer.texts == [f"WARNING from a thread {i}" for i in range(8)]


def test_the_wait_is_bounded_and_drops_nothing(router, monkeypatch):
    monkeypatch.setattr(router_module, "MAX_WAIT", 0.05)
    start = time.monotonic()
    raise_in_thread(router, 8).join(10)  # nobody routes: each of the last three waits 50 ms
    assert 0.15 <= time.monotonic() - start < 5
    assert router.submitted == 8


def test_the_loop_thread_never_waits(router, monkeypatch):
    monkeypatch.setattr(router_module, "MAX_WAIT", 30.0)
    router._loop_thread = threading.get_ident()  # as ``running()`` sets it
    start = time.monotonic()
    for i in range(20):
        router.submit(make_alert(f"on the loop {i}", "warning"))
    assert time.monotonic() - start < 5 and router.submitted == 20
