"""Holds in delivery (lcbot.holds): a gated transport makes recipients wait instead of
failing — on a real SQLite outbox and drainer with a fake clock, a real App, and the
``lcbot outbox list`` CLI as a real process."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

from lcbot.db import Database
from lcbot.db.outbox import held_critical, list_rows
from lcbot.drainer import Drainer, Pacing
from lcbot.holds import Holds, waiting_line
from lcbot.message import Feed
from lcbot.outbox import Outbox
from lcbot.testing import Harness
from lcbot.transports.base import Address, Deferred, Hold
from lcbot.transports.memory import MemoryTransport
from tests.procs import db_path, lcbot, lcbot_json, make_project

WINDOW = "reply window closed (alice last wrote 13h ago): waits for alice to write"


class GatedTransport(MemoryTransport):
    """A memory transport with a reply window per label: ``holds`` (label → Hold),
    ``allow`` (label → sends left: at 0 the label is held), ``defer`` (label → how many
    sends raise ``Deferred``)."""

    gated = True

    def __init__(self) -> None:
        super().__init__()
        self.holds: dict[str, Hold] = {}
        self.allow: dict[str, int] = {}
        self.defer: dict[str, int] = {}
        self.asked: list[str] = []

    def hold(self, address: Address) -> Hold | None:
        self.asked.append(address.label)
        return self.holds.get(address.label)

    def allowance(self, address: Address) -> int | None:
        return self.allow.get(address.label)

    async def send(self, address: Address, text: str) -> None:
        label = address.label
        if self.defer.get(label):
            self.defer[label] -= 1
            raise Deferred("rate limited")
        await super().send(address, text)
        if label in self.allow:
            self.allow[label] -= 1
            if not self.allow[label]:
                self.holds[label] = Hold(WINDOW)

    def release(self, label: str) -> None:
        """The user wrote: the window is open again."""
        self.holds.pop(label, None)
        self.allow.pop(label, None)


def by_name(recipient: str) -> Address:
    return Address("name", recipient, recipient)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """An outbox on a real SQLite file, a gated transport and a drainer on a fake clock."""

    def __init__(self, path: Path, pacing: Pacing | None = None) -> None:
        self.path = path
        self.db = Database(path)
        self.db.open()
        self.feed = Feed()
        self.box = Outbox(self.db, self.feed)
        self.box.open()
        self.transport = GatedTransport()
        self.transport.set_ready(True)
        self.clock = Clock()
        self.drainer = Drainer(
            self.feed,
            self.box,
            self.transport,
            by_name,
            pacing or Pacing(),
            clock=self.clock,
            load=self.box.pending_for,
        )

    def put(self, recipient: str, text: str, kind: str = "reply") -> None:
        self.box.put(recipient, text, kind)

    def store(self) -> None:
        assert self.box.flush()
        self.drainer.take_feed()

    async def round(self) -> list[tuple[str, str]]:
        before = len(self.transport.sent)
        await self.drainer.send_round()
        self.store()
        return self.transport.sent[before:]

    def rows(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.path) as db:
            return db.execute(sql).fetchall()

    def holds(self) -> dict[str, str]:
        return dict(self.rows("SELECT recipient, reason FROM holds"))

    def close(self) -> None:
        self.box.close()
        self.db.close()


def run(coro):
    return asyncio.run(coro)


def test_a_held_recipient_gets_nothing_others_do_and_a_wake_releases_them_coalesced(tmp_path):
    async def go():
        rig = Rig(tmp_path / "lcbot.db")
        rig.transport.holds["alice"] = Hold(WINDOW)
        for i in range(3):
            rig.put("alice", f"alert {i}")
        rig.put("bob", "hi bob")
        rig.store()
        assert await rig.round() == [("bob", "hi bob")]
        assert await rig.round() == []
        assert rig.drainer.next_send_at() is None  # waits for a wake, not a timer
        assert rig.holds() == {"alice": WINDOW}
        states = rig.rows("SELECT state, attempts FROM outbox WHERE recipient = 'alice'")
        assert states == [("pending", 0)] * 3
        rig.put("alice", "alert 3")  # still coalescing while held
        rig.store()
        assert await rig.round() == []
        rig.transport.release("alice")
        assert await rig.round() == []  # no wake yet: the drainer has not asked again
        rig.drainer.wake()
        assert rig.feed.changed.is_set()
        rig.drainer.take_feed()
        assert await rig.round() == [("alice", "alert 0\nalert 1\nalert 2\nalert 3")]
        assert rig.holds() == {}
        assert {s for (s,) in rig.rows("SELECT state FROM outbox")} == {"sent"}
        rig.close()

    run(go())


def test_a_hold_until_lifts_by_itself(tmp_path):
    async def go():
        rig = Rig(tmp_path / "lcbot.db")
        rig.transport.holds["alice"] = Hold("rate limited: back off 30 s", until=1030.0)
        rig.put("alice", "one")
        rig.store()
        assert await rig.round() == []
        assert rig.drainer.next_send_at() == 1030.0
        rig.clock.now = 1029.9
        assert await rig.round() == []
        rig.transport.holds.clear()  # the back-off is over
        rig.clock.now = 1030.0
        assert await rig.round() == [("alice", "one")]
        assert rig.holds() == {}
        rig.close()

    run(go())


def test_deferred_costs_no_attempt_no_warning_and_is_retried_when_hold_allows(tmp_path, caplog):
    async def go():
        rig = Rig(tmp_path / "lcbot.db", Pacing(max_attempts=2))
        rig.transport.defer["alice"] = 5  # more than max_attempts
        rig.put("alice", "important")
        rig.store()
        with caplog.at_level(logging.INFO, logger="lcbot"):
            for _ in range(5):
                assert await rig.round() == []
                at = rig.drainer.next_send_at()
                assert at is not None and at > rig.clock.now  # waits, no busy loop
                rig.clock.now = at
            assert rig.holds() == {"alice": "deferred by the transport (rate limited)"}
            assert await rig.round() == [("alice", "important")]
        assert rig.rows("SELECT state, attempts FROM outbox") == [("sent", 0)]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        waits = [r.getMessage() for r in caplog.records if "wait" in r.getMessage()]
        assert len(waits) == 1, waits  # one INFO line for five deferrals
        assert "rate limited" in waits[0]
        assert any("go again" in r.getMessage() for r in caplog.records)
        assert rig.holds() == {}
        rig.close()

    run(go())


def test_deferred_with_a_hold_waits_for_that_hold(tmp_path):
    async def go():
        rig = Rig(tmp_path / "lcbot.db")

        async def refuse(address, text):  # the server refused: the window closed meanwhile
            rig.transport.holds[address.label] = Hold(WINDOW)
            raise Deferred("ret=-2")

        rig.transport.send = refuse
        rig.put("alice", "one")
        rig.store()
        assert await rig.round() == []
        assert rig.drainer.next_send_at() is None
        assert rig.holds() == {"alice": WINDOW}
        assert rig.rows("SELECT state, attempts FROM outbox") == [("pending", 0)]
        rig.close()

    run(go())


def test_the_last_permitted_message_says_how_many_wait(tmp_path):
    async def go():
        rig = Rig(tmp_path / "lcbot.db", Pacing(max_chars=20))
        rig.transport.allow["alice"] = 2
        for i in range(7):
            rig.put("alice", f"msg-{i:04d}")  # two fit in one send of 20 chars
        rig.store()
        assert await rig.round() == [("alice", "msg-0000\nmsg-0001")]  # allowance 2: no line
        (sent,) = await rig.round()  # allowance 1: the last before the hold
        assert sent == ("alice", "msg-0002\nmsg-0003\n" + waiting_line(3))
        assert sent[1].endswith("— 3 messages waiting — send anything to receive them")
        assert await rig.round() == []  # held now
        assert rig.holds() == {"alice": WINDOW}
        rig.close()

    run(go())


def test_the_waiting_count_includes_the_backlog_in_the_database(tmp_path):
    path = tmp_path / "lcbot.db"
    first = Rig(path)
    for i in range(250):  # more than the backlog's window of 200
        first.put("alice", f"m{i}")
    assert first.box.flush()
    first.close()

    async def go():
        rig = Rig(path, Pacing(max_chars=10))  # an earlier run's rows: read in windows
        rig.transport.allow["alice"] = 1
        rig.drainer.take_feed()
        assert rig.drainer.backlog.in_database
        (sent,) = await rig.round()
        assert sent == ("alice", "m0\nm1\nm2\n" + waiting_line(247))
        rig.close()

    run(go())


def test_one_message_and_more_messages_waiting_lines():
    assert waiting_line(1) == "— 1 message waiting — send anything to receive them"
    assert waiting_line(None) == "— more messages waiting — send anything to receive them"


def test_without_a_count_of_the_database_the_line_says_more():
    from lcbot.backlog import Backlog
    from lcbot.message import Message

    class Gate:
        def hold(self, address):
            return None

        def allowance(self, address):
            return 1

    recorded = []
    backlog = Backlog(lambda recipient, after, limit: [])
    backlog.mark_backlog(["alice"])  # pending rows in the database only
    backlog.add(Message(1, "alice", "hi", stored=False))
    holds = Holds(
        Gate(), type("L", (), {"record": lambda self, *a: recorded.append(a)})(), backlog, {}
    )
    text = holds.before_send("alice", by_name("alice"), "hi", 1)
    assert text == "hi\n" + waiting_line(None)


def test_a_file_is_never_held_back_by_the_line_and_files_wait_too(tmp_path):
    async def go():
        from lcbot.files import FileStore

        rig = Rig(tmp_path / "lcbot.db")
        files = FileStore(tmp_path, 10_000, "test")
        rig.box.files = rig.drainer.files = files
        rig.transport.holds["alice"] = Hold(WINDOW)
        rig.box.put_file("alice", b"png bytes", "chart.png")
        rig.store()
        assert await rig.round() == []
        assert rig.transport.files == []
        rig.transport.release("alice")
        rig.drainer.wake()
        rig.drainer.take_feed()
        await rig.round()
        assert rig.transport.files == [("alice", "chart.png", b"png bytes")]
        rig.close()

    run(go())


def test_a_non_gated_transport_is_never_asked(tmp_path):
    async def go():
        rig = Rig(tmp_path / "lcbot.db")
        rig.transport.gated = False
        rig.drainer = Drainer(rig.feed, rig.box, rig.transport, by_name, clock=rig.clock)
        rig.transport.holds["alice"] = Hold(WINDOW)  # ignored: not gated
        rig.put("alice", "one")
        rig.store()
        assert await rig.round() == [("alice", "one")]
        assert rig.transport.asked == []
        rig.close()

    run(go())


def test_a_stale_hold_row_from_an_earlier_run_goes_with_the_first_send(tmp_path):
    async def go():
        path = tmp_path / "lcbot.db"
        rig = Rig(path)
        rig.transport.holds["alice"] = Hold(WINDOW)
        rig.put("alice", "one")
        rig.store()
        await rig.round()
        assert rig.holds() == {"alice": WINDOW}
        rig.close()
        again = Rig(path)  # the next run: the window is open now
        again.drainer.take_feed()
        assert await again.round() == [("alice", "one")]
        assert again.holds() == {}
        again.close()

    run(go())


# --- lcbot outbox list (a real process) ----------------------------------------------------------


def test_outbox_list_shows_why_a_pending_row_is_held(tmp_path):
    project = make_project(tmp_path / "bot")
    db_path(project).parent.mkdir(parents=True)

    async def go():
        rig = Rig(db_path(project))
        rig.transport.holds["alice"] = Hold(WINDOW)
        rig.put("alice", "disk full")
        rig.put("bob", "for bob")
        rig.store()
        await rig.round()
        rig.store()
        rig.close()

    run(go())
    items = {m["recipient"]: m for m in lcbot_json(project, "outbox", "list")}
    assert items["alice"]["state"] == "pending"
    assert items["alice"]["held"] == WINDOW
    assert items["bob"]["state"] == "sent"
    assert items["bob"]["held"] is None
    table = lcbot(project, "outbox", "list", COLUMNS="300")
    assert table.returncode == 0, table.stderr
    assert f"pending (held: {WINDOW})" in table.stdout
    assert table.stdout.count("held:") == 1


# --- the App: wake and notify wired, the fallback for held critical alerts ----------------------


def test_the_app_wires_wake_and_notify(tmp_path):
    async def go():
        transport = GatedTransport()
        transport.holds["bob"] = Hold(WINDOW)
        harness = Harness(tmp_path, users={"alice": "root", "bob": "user"}, transport=transport)
        async with harness as bot:
            bot.app.outbox.put("bob", "queued for bob", "notice")
            transport.notify(None, "link expired: run lcbot user link bob")
            assert not await bot.app.drain(5)  # bob's message waits for the hold: no 5 s wait
            assert bot.to("alice") == ["link expired: run lcbot user link bob"]
            assert bot.to("bob") == []
            transport.notify("bob", "second")
            while len(bot.app.drainer.queues.get("bob", ())) < 2:  # stored, in the drainer
                await asyncio.sleep(0.01)
            transport.release("bob")
            transport.wake()
            await bot.settle()
            assert bot.to("bob") == ["queued for bob\nsecond"]
            assert bot.app.outbox.db.conn.execute("SELECT count(*) FROM holds").fetchone() == (0,)

    run(go())


def test_held_critical_alerts_go_to_the_fallback_once(tmp_path):
    from tests.test_alerts_e2e import http_recorder

    async def go(port: int, bodies: list[str]):
        transport = GatedTransport()
        transport.holds["bob"] = Hold(WINDOW)
        config = {"alerts": {"fallback_after": 0.3, "fallback_urls": [f"json://127.0.0.1:{port}/"]}}
        users = {"alice": "root", "bob": "root"}
        async with Harness(tmp_path, users=users, config=config, transport=transport) as bot:
            fallback = bot.app.fallback
            assert fallback is not None and fallback.held is not None
            bot.app.bot("test").alert("db down", level="critical")
            bot.app.router.route_pending()
            await bot.app.drain(5)
            assert bot.lines("alice") == ["CRITICAL db down"]
            assert bot.to("bob") == []
            assert await fallback.check() == 0  # held, but not long enough yet
            await asyncio.sleep(0.4)
            assert await fallback.check() == 1
            assert len(bodies) == 1 and "db down" in bodies[0]
            await asyncio.sleep(0.1)
            assert await fallback.check() == 0  # once
            conn = bot.app.db.conn
            for _ in range(100):  # the mark goes with the writer's next commit
                marked = conn.execute(
                    "SELECT recipient FROM outbox WHERE fallback_at IS NOT NULL"
                ).fetchall()
                if marked:
                    break
                await asyncio.sleep(0.01)
            assert marked == [("bob",)]  # alice's copy went by chat
            assert held_critical(conn, 1e18) == []
            transport.release("bob")
            transport.wake()
            await bot.settle()
            assert bot.lines("bob") == ["CRITICAL db down"]  # the chat copy still goes

    with http_recorder() as (port, bodies):
        run(go(port, bodies))


def test_list_rows_marks_only_pending_rows_of_held_recipients(tmp_path):
    db = Database(tmp_path / "lcbot.db")
    db.open()
    conn = db.conn
    conn.execute("INSERT INTO holds VALUES ('alice', 'why', 1.0)")
    for i, state in enumerate(("pending", "sent", "dead"), 1):
        conn.execute(
            "INSERT INTO outbox (id, recipient, text, state, created) "
            "VALUES (?, 'alice', 't', ?, 0)",
            (i, state),
        )
    conn.execute("INSERT INTO outbox (id, recipient, text, created) VALUES (4, 'bob', 't', 0)")
    held = {(m["id"], m["held"]) for m in list_rows(conn, None, 10)}
    assert held == {(1, "why"), (2, None), (3, None), (4, None)}
    assert [m["id"] for m in list_rows(conn, "pending", 10)] == [4, 1]
    db.close()


def test_the_repeated_hold_queries_search_the_outbox_by_index(tmp_path):
    """The fallback asks every second; the outbox is never scanned (``holds`` is: a few rows)."""
    from lcbot.db.outbox import pending_after
    from tests.test_db import plans

    db = Database(tmp_path / "lcbot.db")
    db.open()
    for query in (lambda c: held_critical(c, 1.0), lambda c: pending_after(c, "alice", (0, 5))):
        statements: list[str] = []
        db.conn.set_trace_callback(statements.append)
        query(db.conn)
        db.conn.set_trace_callback(None)
        (steps,) = plans(db.conn, statements).values()
        assert any("USING INDEX outbox_pending_to" in step for step in steps), steps
        assert not [step for step in steps if step.startswith(("SCAN o", "SCAN outbox"))], steps
    db.close()
