"""``lcbot outbox list|retry|purge`` and ``lcbot alerts recent`` as real processes, on a
real SQLite file, with and without a running ``lcbot run --transport console``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lcbot.alerts import make_alert
from lcbot.db import connect, transaction
from lcbot.db.alerts import insert_new
from lcbot.db.outbox import retry
from tests.procs import (
    bots,
    db_path,
    lcbot,
    lcbot_json,
    make_project,
    patched,
    query,
    run_console,
    wait_until,
)

DAY = 86400.0
WIDE = {"COLUMNS": "200"}  # rich tables: no wrapping


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "bot")


def seed(project: Path, *rows: dict) -> None:
    """Insert outbox rows (the schema of lcbot/store.py) with the keys given."""
    db = connect(db_path(project))
    now = time.time()
    for row in rows:
        row = {"kind": "reply", "attempts": 0, "created": now, "priority": 0, **row}
        names = ", ".join(row)
        marks = ", ".join("?" * len(row))
        db.execute(f"INSERT INTO outbox ({names}) VALUES ({marks})", tuple(row.values()))
    db.close()


def states(project: Path) -> dict[int, str]:
    return dict(query(project, "SELECT id, state FROM outbox"))


def mixed(project: Path) -> None:
    """Rows 1–2 sent, 3 pending, 4–5 dead."""
    now = time.time()
    seed(
        project,
        {"id": 1, "recipient": "me", "text": "old news", "state": "sent", "sent_at": now - DAY},
        {"id": 2, "recipient": "bob", "text": "fresh", "state": "sent", "sent_at": now - 60},
        {"id": 3, "recipient": "me", "text": "waiting", "state": "pending"},
        {
            "id": 4,
            "recipient": "bob",
            "text": "gave up on bob",
            "state": "dead",
            "attempts": 20,
            "last_error": "ConnectionError: down",
        },
        {
            "id": 5,
            "recipient": "me",
            "text": "gave up on me",
            "state": "dead",
            "attempts": 20,
            "last_error": "ConnectionError: down",
        },
    )


# --- list -----------------------------------------------------------------------------------------


def test_list_without_a_database_is_empty_and_creates_nothing(project):
    assert lcbot_json(project, "outbox", "list") == []
    assert not db_path(project).exists()


def test_list_all_and_by_state(project):
    mixed(project)
    items = lcbot_json(project, "outbox", "list")
    assert [m["id"] for m in items] == [5, 4, 3, 2, 1]  # newest first
    assert set(items[0]) == {
        "id",
        "created",
        "recipient",
        "kind",
        "state",
        "attempts",
        "sent_at",
        "last_error",
        "text",
        "file",
        "file_size",
        "held",  # a pending row's hold reason (lcbot.holds), else null
    }
    assert items[2]["held"] is None  # pending, its recipient not held
    dead = items[1]
    assert (dead["recipient"], dead["state"], dead["attempts"], dead["last_error"]) == (
        "bob",
        "dead",
        20,
        "ConnectionError: down",
    )
    by_state = {
        state: [m["id"] for m in lcbot_json(project, "outbox", "list", "--state", state)]
        for state in ("pending", "sent", "dead")
    }
    assert by_state == {"pending": [3], "sent": [2, 1], "dead": [5, 4]}
    assert [m["id"] for m in lcbot_json(project, "outbox", "list", "-n", "2")] == [5, 4]

    table = lcbot(project, "outbox", "list", "--state", "dead", **WIDE)
    assert table.returncode == 0, table.stderr
    assert "dead (ConnectionError: down)" in table.stdout
    assert "gave up on bob" in table.stdout
    assert "waiting" not in table.stdout and "fresh" not in table.stdout


def test_list_shows_a_file_row_with_its_name_and_size(project):
    seed(
        project,
        {"id": 1, "recipient": "me", "text": "disk.png", "state": "pending", "file": "k1"},
    )
    db = connect(db_path(project))
    db.execute("UPDATE outbox SET file_size = 1234567")
    db.close()
    (item,) = lcbot_json(project, "outbox", "list")
    assert (item["text"], item["file"], item["file_size"]) == ("disk.png", "k1", 1234567)
    table = lcbot(project, "outbox", "list", **WIDE)
    assert table.returncode == 0, table.stderr
    assert "[file] disk.png (1,234,567 bytes)" in table.stdout


def test_list_unknown_state_exits_2(project):
    mixed(project)
    result = lcbot(project, "outbox", "list", "--state", "lost")
    assert result.returncode == 2
    assert "unknown state 'lost'" in result.stderr
    assert result.stdout == ""


# --- retry ----------------------------------------------------------------------------------------


def test_retry_usage_errors_exit_2_and_change_nothing(project):
    mixed(project)
    before = states(project)
    for args, message in [
        (["3"], "message 3 is pending, not dead"),
        (["2"], "message 2 is sent, not dead"),
        (["99"], "no message 99"),
        ([], "give a message ID or --dead"),
        (["4", "--dead"], "give a message ID or --dead"),
    ]:
        result = lcbot(project, "outbox", "retry", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert states(project) == before


def test_retry_one_then_all_dead_and_a_run_delivers_them(project):
    mixed(project)
    one = lcbot(project, "outbox", "retry", "4")
    assert one.returncode == 0, one.stderr
    assert "1 message(s) queued again" in one.stdout
    assert states(project) == {1: "sent", 2: "sent", 3: "pending", 4: "retry", 5: "dead"}
    retried = [m["id"] for m in lcbot_json(project, "outbox", "list", "--state", "retry")]
    assert retried == [4]

    every = lcbot(project, "outbox", "retry", "--dead")
    assert every.returncode == 0, every.stderr
    assert "1 message(s) queued again" in every.stdout  # only 5 was still dead
    assert states(project)[5] == "retry"

    result = run_console(project, "")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sorted(lines) == sorted(["waiting", "gave up on me", "→ bob: gave up on bob"])
    assert states(project) == dict.fromkeys(range(1, 6), "sent")


def test_retry_while_the_bot_runs_is_picked_up_within_a_second(project):
    seed(
        project,
        {"id": 7, "recipient": "bob", "text": "late news", "state": "dead", "attempts": 20},
    )
    with bots() as start:
        bot = start(project)
        bot.send("whoami")
        bot.expect("me (root)")
        assert states(project)[7] == "dead"  # a dead row is not sent by itself
        began = time.monotonic()
        result = lcbot(project, "outbox", "retry", "7")
        assert result.returncode == 0, result.stderr
        bot.expect("→ bob: late news", timeout=5)
        assert bot.times[-1] - began < 1.5
        wait_until(lambda: states(project)[7] == "sent", "row 7 marked sent")
        bot.end_input()
        assert bot.wait() == 0
        assert bot.rest() == []
    assert query(project, "SELECT attempts, sent_at IS NOT NULL FROM outbox WHERE id = 7") == [
        (0, 1)
    ]


# The first send of a text holding "flaky" fails; later sends work (the child's
# sitecustomize: fault injection from outside lcbot).
FLAKY = """\
from lcbot.transports.console import ConsoleTransport

failed = []
original = ConsoleTransport.send


async def send(self, address, text):
    if "flaky" in text and not failed:
        failed.append(text)
        raise ConnectionError("flaky network")
    await original(self, address, text)


ConsoleTransport.send = send
"""


@pytest.mark.parametrize(
    "when",
    ["while-running", "before-start"],
)
def test_retried_row_gets_a_fresh_set_of_attempts(tmp_path, when):
    project = make_project(tmp_path / "bot", {"me": "root"})
    flaky = patched(tmp_path / "flaky", FLAKY)
    seed(
        project,
        {"id": 1, "recipient": "me", "text": "flaky news", "state": "dead", "attempts": 20},
    )
    if when == "before-start":
        assert lcbot(project, "outbox", "retry", "1").returncode == 0
        result = run_console(project, "", **flaky)  # first send fails; retried after 1 s
        assert result.returncode == 0, result.stderr
        assert "send to me failed (ConnectionError: flaky network)" in result.stderr
        assert result.stdout.splitlines() == ["flaky news"]
    else:
        with bots() as start:
            bot = start(project, **flaky)
            bot.send("whoami")
            bot.expect("me (root)")
            assert lcbot(project, "outbox", "retry", "1").returncode == 0
            bot.expect("flaky news", timeout=10)
            wait_until(lambda: states(project)[1] == "sent", "row 1 marked sent")
            bot.end_input()
            assert bot.wait() == 0
            assert "send to me failed (ConnectionError: flaky network)" in bot.stderr
    assert states(project)[1] == "sent"


# --- purge ----------------------------------------------------------------------------------------


def test_purge_sent_only_and_older_than(project):
    now = time.time()
    seed(
        project,
        {"id": 1, "recipient": "me", "text": "a", "state": "sent", "sent_at": now - 10 * DAY},
        {"id": 2, "recipient": "me", "text": "b", "state": "sent", "sent_at": now - 3 * DAY},
        {"id": 3, "recipient": "me", "text": "c", "state": "sent", "sent_at": now - 60},
        {"id": 4, "recipient": "me", "text": "d", "state": "pending", "created": now - 30 * DAY},
        {"id": 5, "recipient": "me", "text": "e", "state": "dead", "created": now - 30 * DAY},
        {"id": 6, "recipient": "me", "text": "f", "state": "retry", "created": now - 30 * DAY},
    )
    for args, message in [
        ([], "only --sent can be purged"),
        (["--sent", "--older-than", "soon"], "--older-than: 'soon' is not a duration"),
        (["--sent", "--older-than", "7x"], "--older-than: '7x' is not a duration"),
        (["--older-than", "7d"], "only --sent can be purged"),
    ]:
        result = lcbot(project, "outbox", "purge", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert sorted(states(project)) == [1, 2, 3, 4, 5, 6]

    week = lcbot(project, "outbox", "purge", "--sent", "--older-than", "7d")
    assert week.returncode == 0, week.stderr
    assert "purged 1 sent message(s)" in week.stdout
    assert sorted(states(project)) == [2, 3, 4, 5, 6]

    hours = lcbot(project, "outbox", "purge", "--sent", "--older-than", "1h")
    assert hours.returncode == 0, hours.stderr
    assert "purged 1 sent message(s)" in hours.stdout
    assert sorted(states(project)) == [3, 4, 5, 6]

    every = lcbot(project, "outbox", "purge", "--sent")
    assert every.returncode == 0, every.stderr
    assert "purged 1 sent message(s)" in every.stdout
    assert states(project) == {4: "pending", 5: "dead", 6: "retry"}


# --- alerts recent --------------------------------------------------------------------------------


def test_alerts_recent_lists_outcomes_newest_first(project):
    muted = run_console(project, "mute 1h\n", "--as", "bob")
    assert muted.returncode == 0, muted.stderr
    assert muted.stdout.startswith("alerts muted for 1h")

    def raise_(*args: str) -> int:
        result = lcbot(project, "alert", *args)
        assert result.returncode == 0, result.stderr
        return int(result.stdout)

    info = raise_("nightly job done")  # info → root only
    warn = raise_("queue slow", "--level", "warning", "--key", "queue")  # → root, admin
    repeat = raise_("queue slow", "--level", "warning", "--key", "queue")
    crit = raise_("db down", "--level", "critical", "--title", "db")  # → everyone
    result = run_console(project, "")
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(
        [
            "INFO nightly job done",
            "WARNING queue slow",
            "CRITICAL db: db down",
            "→ carol: CRITICAL db: db down",
        ]
    )

    recent = lcbot_json(project, "alerts", "recent")
    assert [a["id"] for a in recent] == [crit, repeat, warn, info]
    assert [a["outcome"] for a in recent] == [
        {"state": "delivered", "to": ["me", "carol"], "muted": ["bob"]},
        {"state": "deduplicated"},
        {"state": "delivered", "to": ["me"], "muted": ["bob"]},
        {"state": "delivered", "to": ["me"]},
    ]
    assert [a["state"] for a in recent] == ["delivered", "deduplicated", "delivered", "delivered"]
    assert [(a["level"], a["key"], a["title"]) for a in recent] == [
        ("critical", None, "db"),
        ("warning", "queue", None),
        ("warning", "queue", None),
        ("info", None, None),
    ]
    assert [a["id"] for a in lcbot_json(project, "alerts", "recent", "-n", "2")] == [crit, repeat]

    table = lcbot(project, "alerts", "recent", **WIDE)
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 4
    assert "db: db down" in rows[0] and "delivered to me, carol (muted: bob)" in rows[0]
    assert "deduplicated" in rows[1] and "queue" in rows[1]
    assert "delivered to me" in rows[3] and "nightly job done" in rows[3]


# An on_alert hook that raises another alert while the router is routing ("ping" → "pong"):
# the router is woken again at once. Both alerts are suppressed (recorded, never sent).
ECHO = """\
from lcbot import hookimpl

_bot = []  # a test plugin: the bot it runs in


@hookimpl
def lcbot_startup(bot):
    _bot.append(bot)


@hookimpl
def on_alert(alert):
    if alert.text == "ping":
        _bot[0].alert("pong")
    return False
"""


def test_retried_row_is_sent_once_when_an_alert_wakes_the_router(tmp_path):
    project = make_project(tmp_path / "bot", {"me": "root"}, plugins={"echo": ECHO})
    seed(
        project,
        {"id": 100, "recipient": "me", "text": "late news", "state": "dead", "attempts": 20},
    )
    with bots() as start:
        bot = start(project)
        bot.send("whoami")
        bot.expect("me (root)")
        # `lcbot alert ping` and `lcbot outbox retry 100`, committed together so that the
        # same router pass sees both (each alone is what those commands write)
        db = connect(db_path(project))
        with transaction(db):
            insert_new(db, [make_alert("ping", source="cli")])
            assert retry(db, 100) == 1
        db.close()
        bot.expect("late news", timeout=5)
        wait_until(lambda: states(project)[100] == "sent", "row 100 marked sent")
        wait_until(
            lambda: (
                query(project, "SELECT count(*) FROM alerts WHERE state = 'suppressed'") == [(2,)]
            ),
            "ping and pong routed",
        )
        bot.send("whoami")  # its reply comes after anything queued before it
        bot.expect("me (root)")
        bot.end_input()
        assert bot.wait() == 0
        bot.rest()
    assert bot.seen.count("late news") == 1, bot.seen
