"""Alert grouping: the same groups and the same timing as Alertmanager for the same inputs.

Semantics checked, from Alertmanager's documentation (configuration.md, ``route``) and its
dispatcher (``dispatch/dispatch.go``):

* ``group_by``: "The labels by which incoming alerts are grouped together. For example,
  multiple alerts coming in for cluster=A and alertname=LatencyHigh would be batched into a
  single group." — "To aggregate by all possible labels use the special value '...' as the
  sole label name … This effectively disables aggregation entirely, passing through all
  alerts as-is."
* ``group_wait``: "How long to initially wait to send a notification for a group of alerts.
  Allows to wait for an inhibiting alert to arrive or collect more initial alerts for the
  same group."
* ``group_interval``: "How long to wait before sending a notification about new alerts that
  are added to a group of alerts for which an initial notification has already been sent."
  The group's timer ticks every group_interval after a flush (``aggrGroup.run``).
* ``aggrGroup.insert``: "Immediately trigger a flush if the wait duration for this alert is
  already over" (an alert that started more than group_wait ago, in a group not yet sent).
* A notification carries every alert of the group, firing and resolved; a group whose
  alerts are all resolved is deleted after its flush.

Where lcbot differs on purpose: an empty ``group_by`` means grouping is off (Alertmanager
puts every alert in one group), so a config without it behaves as before.
"""

from __future__ import annotations

import asyncio

from lcbot.alerts import Alert, make_alert
from lcbot.db import connect, transaction
from lcbot.db.alerts import insert_new, set_outcome
from lcbot.grouping import Grouper, flush, group_labels
from tests.engine import running_bot

T0 = 1_000_000.0


def alert(title, text, level="warning", resolved=False, created=T0, **labels) -> Alert:
    return make_alert(text, level, title, None, resolved, "test", created, labels=labels)


class Stages:
    """The router's later stages, recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, Alert, str]] = []
        self.saved: list[Alert] = []
        self.seen_keys: set[str] = set()

    def count_repeat(self, a: Alert, now: float) -> bool:
        return bool(a.key) and not a.resolved and a.key in self.seen_keys

    def note_key(self, a: Alert, now: float) -> str:
        if a.key:
            self.seen_keys.add(a.key)
        return a.message()

    def send(self, a: Alert, text: str, now: float) -> dict:
        self.sent.append((now, a, text))
        return {"state": "delivered", "to": ["bob"]}

    def save_grouped(self, a: Alert) -> None:
        self.saved.append(a)


def texts(stages: Stages) -> list[str]:
    return [text for _, _, text in stages.sent]


def test_group_labels_as_alertmanager():
    labels = {"alertname": "DiskFull", "host": "db1", "mount": "/var"}
    assert group_labels(labels, ["alertname", "host"]) == {"alertname": "DiskFull", "host": "db1"}
    assert group_labels(labels, ["cluster"]) == {}  # absent labels are no labels
    assert group_labels(labels, ["..."]) == labels


def test_group_wait_batches_the_first_message():
    grouper, stages = Grouper(["host"], 10, 300), Stages()
    grouper.add(alert("DiskFull", "/var", host="db1"), T0)
    grouper.add(alert("DiskFull", "/home", host="db1"), T0 + 3)
    grouper.add(alert("LoadHigh", "LoadHigh", "critical", host="db1"), T0 + 6)
    assert flush(grouper, stages, T0 + 9.9) == 0  # still within group_wait of the first
    assert flush(grouper, stages, T0 + 10) == 1
    ((_, combined, text),) = stages.sent
    assert text == "CRITICAL 3 firing for host=db1: DiskFull /var, DiskFull /home, LoadHigh"
    assert combined.level == "critical"  # the highest of the group
    assert [a.outcome["group"] for a in stages.saved] == ["host=db1"] * 3
    assert {a.outcome["state"] for a in stages.saved} == {"delivered"}


def test_group_interval_sends_later_additions_as_one_update():
    grouper, stages = Grouper(["host"], 10, 300), Stages()
    grouper.add(alert("DiskFull", "/var", host="db1"), T0)
    flush(grouper, stages, T0 + 10)
    grouper.add(alert("LoadHigh", "1m 12", host="db1"), T0 + 20)
    grouper.add(alert("SwapFull", "90%", host="db1"), T0 + 30)
    assert flush(grouper, stages, T0 + 309) == 0  # the group's next tick is 10 + 300
    assert flush(grouper, stages, T0 + 310) == 1
    assert texts(stages)[-1] == (
        "WARNING 3 firing for host=db1: DiskFull /var, LoadHigh 1m 12, SwapFull 90%"
    )
    # an addition after a quiet tick waits for the next tick of the cycle (610 passed empty)
    grouper.add(alert("NetDown", "eth0", host="db1"), T0 + 700)
    assert grouper.next_due() == T0 + 310 + 600
    assert flush(grouper, stages, T0 + 909) == 0
    assert flush(grouper, stages, T0 + 910) == 1


def test_different_groups_go_separately():
    grouper, stages = Grouper(["alertname", "host"], 10, 300), Stages()
    grouper.add(alert("DiskFull", "/var", alertname="DiskFull", host="db1"), T0)
    grouper.add(alert("DiskFull", "/var", alertname="DiskFull", host="db2"), T0)
    grouper.add(alert("DiskFull", "/home", alertname="DiskFull", host="db1"), T0 + 1)
    grouper.add(alert("Plain", "no labels at all"), T0 + 2)  # the group of no labels
    assert flush(grouper, stages, T0 + 12) == 3
    assert sorted(texts(stages)) == [
        "WARNING 1 firing for alertname=DiskFull host=db2: DiskFull /var",
        "WARNING 1 firing: Plain no labels at all",
        "WARNING 2 firing for alertname=DiskFull host=db1: DiskFull /var, DiskFull /home",
    ]


def test_all_labels_groups_only_identical_label_sets():
    grouper, stages = Grouper(["..."], 10, 300), Stages()
    grouper.add(alert("A", "one", host="db1", mount="/var"), T0)
    grouper.add(alert("A", "one", host="db1", mount="/var"), T0 + 1)  # the same again
    grouper.add(alert("A", "other", host="db1", mount="/home"), T0 + 1)
    assert flush(grouper, stages, T0 + 10) == 1  # each group has its own timer
    assert flush(grouper, stages, T0 + 11) == 1
    assert len(stages.sent) == 2
    assert {len(grouper.groups[name].firing) for name in grouper.groups} == {1}


def test_resolved_alerts_come_in_the_next_update_and_end_the_group():
    grouper, stages = Grouper(["host"], 10, 300), Stages()
    grouper.add(alert("DiskFull", "/var", host="db1", mount="/var"), T0)
    grouper.add(alert("DiskFull", "/home", host="db1", mount="/home"), T0)
    flush(grouper, stages, T0 + 10)
    grouper.add(alert("DiskFull", "/var", resolved=True, host="db1", mount="/var"), T0 + 50)
    assert flush(grouper, stages, T0 + 100) == 0
    flush(grouper, stages, T0 + 310)
    assert texts(stages)[-1] == (
        "WARNING 1 firing for host=db1: DiskFull /home · 1 resolved: DiskFull /var"
    )
    grouper.add(alert("DiskFull", "/home", resolved=True, host="db1", mount="/home"), T0 + 400)
    flush(grouper, stages, T0 + 610)
    _, last, text = stages.sent[-1]
    assert text == "RESOLVED 1 resolved for host=db1: DiskFull /home" and last.resolved
    assert grouper.groups == {}  # nothing fires: the group is gone


def test_an_alert_older_than_group_wait_goes_at_once():
    grouper, stages = Grouper(["host"], 10, 300), Stages()
    grouper.add(alert("DiskFull", "/var", created=T0 - 60, host="db1"), T0)
    assert flush(grouper, stages, T0) == 1


def test_repeats_of_a_key_are_deduplicated_after_grouping():
    grouper, stages = Grouper(["host"], 10, 300), Stages()
    first = make_alert("/var", "warning", "DiskFull", "disk:/var", created=T0)
    again = make_alert("/var 96%", "warning", "DiskFull", "disk:/var", created=T0)
    grouper.add(first, T0)
    grouper.add(again, T0 + 1)
    flush(grouper, stages, T0 + 10)
    assert texts(stages) == ["WARNING 1 firing: DiskFull /var"]
    assert [a.outcome["state"] for a in stages.saved] == ["delivered", "deduplicated"]


# --- through a real bot -----------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


GROUPING = {"alerts": {"group_by": ["host"], "group_wait": 10, "group_interval": 300}}


def test_three_alerts_reach_a_person_as_one_message(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=GROUPING) as bot:
            clock = bot.app.router.clock = Clock(T0)
            submit = bot.app.router.submit
            raised = [
                submit(make_alert("/var", "warning", "DiskFull", labels={"host": "db1"})),
                submit(make_alert("/home", "warning", "DiskFull", labels={"host": "db1"})),
                submit(make_alert("LoadHigh", "critical", labels={"host": "db1"})),
            ]
            await bot.settle()
            assert bot.lines("user1") == []  # waiting for group_wait
            assert {bot.outcome(a)["state"] for a in raised} == {"grouped"}
            clock.now += 10
            await bot.settle()
            one = "CRITICAL 3 firing for host=db1: DiskFull /var, DiskFull /home, LoadHigh"
            assert bot.lines("user1") == [one]  # critical: every user, once
            assert bot.lines("root1") == [one]
            outcome = bot.outcome(raised[0])
            assert outcome["state"] == "delivered" and outcome["group"] == "host=db1"
            assert set(outcome["to"]) == {"root1", "admin1", "admin2", "user1"}

    asyncio.run(go())


def test_without_group_by_nothing_changes(tmp_path):
    async def go():
        async with running_bot(tmp_path) as bot:
            a = bot.app.router.submit(make_alert("disk", "critical", labels={"host": "db1"}))
            await bot.settle()
            assert bot.outcome(a)["state"] == "delivered"

    asyncio.run(go())


def test_grouped_alerts_left_by_a_crash_are_sent_after_the_restart(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=GROUPING):
            pass
        # what a crash leaves: rows recorded ``grouped`` whose message never went
        conn = connect(tmp_path / "data" / "lcbot.db")
        with transaction(conn):
            stored = [
                make_alert(t, "critical", "DiskFull", labels={"host": "db1"}, created=T0)
                for t in ("/var", "/home")
            ]
            for a, id_ in zip(stored, insert_new(conn, stored), strict=True):
                a.id, a.outcome = id_, {"state": "grouped", "group": "host=db1"}
                set_outcome(conn, a)
        conn.close()
        async with running_bot(tmp_path, config=GROUPING) as bot:
            await bot.settle()  # older than group_wait: sent at once
            assert bot.lines("user1") == [
                "CRITICAL 2 firing for host=db1: DiskFull /var, DiskFull /home"
            ]
            assert bot.outcome(stored[0].id)["state"] == "delivered"

    asyncio.run(go())


def test_a_clean_stop_sends_the_groups_still_waiting(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=GROUPING) as bot:
            bot.app.router.clock = Clock(T0)
            bot.app.router.submit(
                make_alert("/var", "critical", "DiskFull", labels={"host": "db1"})
            )
            await bot.settle()
            assert bot.lines("user1") == []
        assert bot.lines("user1") == ["CRITICAL 1 firing for host=db1: DiskFull /var"]

    asyncio.run(go())
