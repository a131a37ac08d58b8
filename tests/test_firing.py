"""Firing state and escalation (``lcbot.firing``, ``lcbot.escalation``) with a fake clock
and a writer that applies every record to a real SQLite file, as the outbox's does."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lcbot.alerts import Alert, AlertSettings
from lcbot.db import connect, transaction
from lcbot.db import firing as sql
from lcbot.escalation import Escalator, next_due, step_users
from lcbot.firing import Firing, identity
from lcbot.labels import fingerprint
from lcbot.users import Directory, Pri, User

M = 60.0
T0 = 1_000_000.0
TEAM = Directory(
    [
        User("root1", Pri.ROOT),
        User("admin1", Pri.ADMIN),
        User("admin2", Pri.ADMIN),
        User("oncall", Pri.USER),
        User("user1", Pri.USER),
    ]
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Writer:
    """Messages in a list; records applied to the database at once (one commit each)."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.messages: list[tuple[str, str]] = []

    def put(self, recipient: str, text: str, kind: str = "reply", priority: int = 0) -> None:
        self.messages.append((recipient, text))

    def record(self, op, *args) -> None:
        with transaction(self.conn):
            op(self.conn, *args)

    def take(self) -> list[tuple[str, str]]:
        taken, self.messages = self.messages, []
        return taken


@dataclass
class People:
    directory: Directory = TEAM

    def reachable(self, user: User) -> bool:
        return True


class Rig:
    def __init__(self, path, **settings) -> None:
        self.path = path
        self.settings = AlertSettings(routes={}, **settings)
        self.clock = Clock()
        self.open()

    def open(self) -> None:
        """A new process: state loaded from the file."""
        self.conn = connect(self.path)
        self.writer = Writer(self.conn)
        self.firing = Firing(self.settings, self.writer, self.clock)
        self.firing.load(self.conn)
        self.escalator = Escalator(self.firing, People(), self.writer, clock=self.clock)

    def fire(self, text="disk full", key="disk:/", level="critical", to=("oncall",), **kw):
        alert = Alert(text, level, key=key, **kw)
        self.firing.track(alert, {"state": "delivered", "to": list(to)}, self.clock())

    def at(self, minutes: float) -> list[tuple[str, str]]:
        """Move the clock to T0 + ``minutes``, tick, and return what was sent."""
        self.clock.now = T0 + minutes * M
        self.escalator.tick()
        return self.writer.take()


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path / "lcbot.db", escalation=("admin", "root"))


def test_identity_is_the_key_else_the_label_fingerprint_else_untracked():
    assert identity(Alert("x", key="k", labels={"a": "1"})) == "k"
    assert identity(Alert("x", labels={"b": "2", "a": "1"})) == fingerprint({"a": "1", "b": "2"})
    assert identity(Alert("x")) is None


def test_register_refresh_resolve_and_short_ids_survive_a_restart(rig):
    rig.fire("disk 91%", key="disk:/")
    rig.fire("load high", key=None, labels={"host": "db1"}, level="warning", to=("admin1",))
    rig.fire("no key, no labels", key=None)  # not tracked
    first, second = sorted(rig.firing.listing(), key=lambda f: f.id)
    assert (first.id, first.text, first.recipients) == (1, "disk 91%", ["oncall"])
    assert (second.id, second.labels) == (2, {"host": "db1"})
    rig.clock.now += 60
    rig.fire("disk 95%", key="disk:/", to=("oncall", "root1"))  # delivered again: refreshed
    [disk] = [f for f in rig.firing.listing() if f.id == 1]
    assert disk.text == "disk 95%" and disk.recipients == ["oncall", "root1"]
    assert disk.last_seen == disk.first_seen + 60
    resolved = Alert("disk ok", "critical", key="disk:/", resolved=True)
    rig.firing.track(resolved, {"state": "delivered"}, rig.clock())
    assert [f.id for f in rig.firing.listing()] == [2]
    rig.open()  # a restart
    assert [(f.id, f.ident) for f in rig.firing.listing()] == [(2, second.ident)]
    rig.fire("disk 99%", key="disk:/")
    assert rig.firing.find("disk:/").id == 3  # a new id: #1 is never given again
    rig.open()
    rig.fire("other", key="other")
    assert rig.firing.find("#4").ident == "other"


def test_silenced_or_undelivered_alerts_are_not_registered(rig):
    for state in ("silenced", "suppressed", "no recipients", "deduplicated"):
        alert = Alert("x", "critical", key=state)
        rig.firing.track(alert, {"state": state}, rig.clock())
    assert rig.firing.listing() == []


def test_renotify_every_interval_until_acknowledged(tmp_path):
    rig = Rig(tmp_path / "lcbot.db", renotify=15 * M)
    rig.fire("disk full", to=("oncall", "user1"))
    assert rig.at(14) == []
    sent = rig.at(15)
    assert [r for r, _ in sent] == ["oncall", "user1"]
    assert sent[0][1] == "CRITICAL #1 disk full (unacknowledged for 15m; ack 1 to take it)"
    assert rig.at(16) == [] and rig.at(29) == []
    assert len(rig.at(30)) == 2
    rig.firing.ack("1", "user1")
    assert rig.writer.take() == [("oncall", "user1 acknowledged #1 disk full")]
    assert rig.at(45) == [] and rig.at(300) == []
    rig.firing.unack("#1", "user1")
    assert rig.writer.take() == [
        ("oncall", "user1 un-acknowledged #1 disk full: re-notification resumes")
    ]
    assert rig.at(314) == []
    assert len(rig.at(315)) == 2  # 15 minutes after the unack


def test_renotify_off_and_non_critical_alerts_are_never_resent(tmp_path):
    rig = Rig(tmp_path / "lcbot.db", renotify=None)
    rig.fire("critical one", key="a")
    rig.fire("a warning", key="b", level="warning")
    assert rig.at(600) == []


ESCALATED = "CRITICAL #1 db down (escalated to you: unacknowledged for {}; ack 1 to take it)"


def test_every_escalation_step_adds_recipients_and_announces_it(rig):
    rig.fire("db down", to=("oncall",))
    assert [r for r, _ in rig.at(15)] == ["oncall"]  # re-notified
    sent = rig.at(30)  # step 1: admins and root (the re-notify to oncall is due too)
    assert sent == [
        ("root1", ESCALATED.format("30m")),
        ("admin1", ESCALATED.format("30m")),
        ("admin2", ESCALATED.format("30m")),
        ("oncall", "#1 db down escalated to root1, admin1, admin2"),
        ("oncall", "CRITICAL #1 db down (unacknowledged for 30m; ack 1 to take it)"),
    ]
    f = rig.firing.find("1")
    assert f.step == 1 and f.recipients == ["oncall", "root1", "admin1", "admin2"]
    assert {r for r, _ in rig.at(45)} == {"oncall", "admin1", "admin2", "root1"}  # re-notify
    # step 2 (root) adds nobody new: the escalation ends, re-notification goes on
    assert all("escalated" not in t for _, t in rig.at(60))
    assert rig.firing.find("1").next_escalate is None
    assert rig.firing.find("1").step == 2


def test_escalation_to_named_users_one_step_per_interval(tmp_path):
    rig = Rig(tmp_path / "lcbot.db", renotify=None, escalation=("admin1", "root"))
    rig.fire("db down", to=("oncall",))
    assert rig.at(29) == []
    assert [r for r, _ in rig.at(30)] == ["admin1", "oncall"]
    assert rig.at(59) == []
    assert rig.at(60) == [
        ("root1", ESCALATED.format("1h")),
        ("oncall", "#1 db down escalated to root1"),
        ("admin1", "#1 db down escalated to root1"),
    ]
    assert rig.at(600) == []  # the last step was taken


def test_ack_stops_escalation_and_tells_every_other_recipient(rig):
    rig.fire("db down", to=("oncall", "user1"))
    rig.at(30)
    taken = rig.firing.ack("disk:/", "admin2")  # by key
    assert taken.acked_by == "admin2"
    told = rig.writer.take()
    assert sorted(r for r, _ in told) == ["admin1", "oncall", "root1", "user1"]
    assert {t for _, t in told} == {"admin2 acknowledged #1 db down"}
    assert rig.at(1000) == []
    again = rig.firing.ack("1", "root1")  # taken already: nothing changes
    assert again.acked_by == "admin2" and rig.writer.take() == []


def test_resolve_by_hand_tells_recipients_and_records_who(rig):
    rig.fire("cert expires", to=("oncall", "admin1"))
    rig.firing.resolve("#1", "admin1")
    assert rig.writer.take() == [("oncall", "RESOLVED #1 cert expires (resolved by admin1)")]
    assert rig.firing.listing() == [] and rig.at(1000) == []
    row = rig.conn.execute("SELECT resolved_by, resolved_at FROM firing WHERE id = 1").fetchone()
    assert row == ("admin1", T0)
    with pytest.raises(LookupError):
        rig.firing.resolve("1", "admin1")
    with pytest.raises(LookupError):
        rig.firing.ack("nope", "admin1")


def test_restart_mid_escalation_resumes_without_repeating(tmp_path):
    rig = Rig(tmp_path / "lcbot.db", escalation=("admin1", "admin2"), renotify=None)
    rig.fire("db down", to=("user1",))
    rig.at(30)  # step 1 sent
    rig.open()  # a new process on the same file
    assert rig.at(31) == []  # nothing of step 1 again
    f = rig.firing.find("1")
    assert f.step == 1 and f.next_escalate == T0 + 60 * M
    assert rig.at(59) == []
    assert [r for r, _ in rig.at(60)] == ["admin2", "user1", "admin1"]  # step 2, on time
    assert rig.at(90) == []


def test_a_bot_stopped_past_a_due_time_catches_up_once(tmp_path):
    rig = Rig(tmp_path / "lcbot.db", renotify=15 * M)
    rig.fire("db down", to=("user1",))
    rig.open()
    assert len(rig.at(100)) == 1  # 6 re-notifications missed: one now
    assert rig.firing.find("1").next_renotify == T0 + 105 * M
    assert next_due(100.0, 10.0, 95.0) == 100.0 and next_due(100.0, 10.0, 100.0) == 110.0


def test_step_users_by_privilege_or_name():
    assert [u.name for u in step_users("admin", TEAM)] == ["root1", "admin1", "admin2"]
    assert [u.name for u in step_users("ROOT", TEAM)] == ["root1"]
    assert [u.name for u in step_users("oncall", TEAM)] == ["oncall"]
    assert step_users("nobody", TEAM) == []


def test_cli_reads_rows_the_bot_wrote(rig):
    rig.fire("disk full", labels={"host": "db1"})
    [row] = sql.load(rig.conn)
    assert row["labels"] == {"host": "db1"} and row["recipients"] == ["oncall"]
