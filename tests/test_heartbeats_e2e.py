"""Heartbeats end to end: real ``lcbot heartbeat`` / ``lcbot heartbeats`` processes and
``lcbot run --transport console`` on a real SQLite file (see ``tests/procs.py``)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.procs import bots, db_path, lcbot, lcbot_json, make_project, one_line, query
from tests.test_cli_users import run_probe

LATE = re.compile(r"WARNING job: no heartbeat for \d+s \(expected every 1s\)")
BACK = re.compile(r"RESOLVED job: heartbeat back after \d+s")


@pytest.fixture
def team(tmp_path: Path) -> Path:
    """Root ``me``, admin ``bob``, user ``carol``."""
    return make_project(tmp_path / "bot")


def beat(project: Path, *args: str) -> None:
    result = lcbot(project, "heartbeat", *args)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


# --- the CLI ------------------------------------------------------------------------------


def test_heartbeat_is_stored_and_listed(team):
    assert lcbot_json(team, "heartbeats") == []
    assert not db_path(team).exists()  # looking does not create the database
    before = time.time()
    beat(team, "nightly-backup", "--every", "1d", "--grace", "30m", "--level", "critical")
    beat(team, "sync", "--every", "90s")
    listed = lcbot_json(team, "heartbeats")
    assert [
        (b["key"], b["every"], b["grace"], b["level"], b["source"], b["state"]) for b in listed
    ] == [
        ("nightly-backup", 86400.0, 1800.0, "critical", "cli", "ok"),
        ("sync", 90.0, 0.0, "warning", "cli", "ok"),
    ]
    assert before <= listed[0]["last_beat"] <= time.time()
    assert listed[0]["due"] == listed[0]["last_beat"] + 86400 + 1800
    table = lcbot(team, "heartbeats")
    assert table.returncode == 0, table.stderr
    assert "nightly-backup" in table.stdout and "1d" in table.stdout and "30m" in table.stdout
    beat(team, "sync", "--every", "1h")  # a beat gives the latest period
    assert [b["every"] for b in lcbot_json(team, "heartbeats")] == [86400.0, 3600.0]
    beat(team, "sync", "--remove")
    assert [b["key"] for b in lcbot_json(team, "heartbeats")] == ["nightly-backup"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["k", "--every", "soon"], "error: --every: 'soon' is not a duration"),
        (["k", "--every", "0"], "error: --every: a duration must be longer than zero"),
        (["k", "--every", "1h", "--grace", "-1m"], "error: --grace: '-1m' is not a duration"),
        (["k", "--every", "400d"], "error: --every: a duration must be at most 366d"),
        (["k"], "error: --every is required (e.g. --every 1h)"),
        (["k", "--every", "1h", "--level", "loud"], "error: --level: unknown level 'loud'"),
        (["a b", "--every", "1h"], "error: KEY: 'a b' is not a heartbeat key"),
        (["nope", "--remove"], "error: no heartbeat 'nope'"),
        (["k", "--remove", "--every", "1h"], "error: --remove takes no --every"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(team, args, message):
    beat(team, "kept", "--every", "1h")
    result = lcbot(team, "heartbeat", *args)
    assert result.returncode == 2, result
    assert one_line(result.stderr).startswith(message), result.stderr
    assert result.stdout == ""
    assert query(team, "SELECT key, every FROM heartbeats") == [("kept", 3600.0)]


def test_heartbeat_command_imports_no_engine(team):
    probe = (
        "import sys; sys.argv = ['lcbot', 'heartbeat', 'k', '--every', '1h']\n"
        "from lcbot.cli import main\n"
        "try: main()\n"
        "except SystemExit as exc: assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('wechaty', 'pluggy', 'asyncio', 'aiohttp', 'apscheduler') "
        "or m in ('lcbot.plugins', 'lcbot.app', 'lcbot.heartbeats'))\n"
        "print('HEAVY', heavy)\n"
    )
    result = run_probe(probe, team)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert query(team, "SELECT key FROM heartbeats") == [("k",)]


# --- with the bot running --------------------------------------------------------------------


def test_console_bot_alerts_a_late_heartbeat_keeps_it_over_a_restart_and_resolves_it(team):
    with bots() as start:
        bot = start(team)
        bot.send("whoami")
        bot.expect("me (root)")
        beat(team, "job", "--every", "1s")
        late = bot.expect(LATE.fullmatch)  # to root ...
        bot.expect(lambda line: line == f"→ bob: {late}")  # ... and the admin
        bot.end_input()
        assert bot.wait() == 0
        rest = bot.rest()
        assert not [line for line in rest if "heartbeat" in line], rest  # one alert only
        assert "Traceback" not in bot.stderr

        # the second bot knows the heartbeat is late and alerted already: no new alert
        bot = start(team)
        bot.send("heartbeats")
        bot.expect("heartbeats:")
        bot.expect(lambda line: line.startswith("job — every 1s — last seen ") and "LATE" in line)
        beat(team, "job", "--every", "1h")  # the cron job is back
        back = bot.expect(BACK.fullmatch)
        bot.expect(f"→ bob: {back}")
        bot.end_input()
        assert bot.wait() == 0
        seen = [*bot.seen, *bot.rest()]
        assert not [line for line in seen if LATE.search(line)], seen
        assert "Traceback" not in bot.stderr
    (listed,) = lcbot_json(team, "heartbeats")
    assert (listed["key"], listed["every"], listed["state"]) == ("job", 3600.0, "ok")
    alerts = query(team, "SELECT key, resolved, state FROM alerts ORDER BY id")
    assert alerts == [("heartbeat:job", 0, "delivered"), ("heartbeat:job", 1, "delivered")]
