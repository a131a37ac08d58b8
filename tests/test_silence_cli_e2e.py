"""End to end: ``lcbot silence add|list|expire`` and labels from ``lcbot alert --label``, as
real subprocesses, with and without a running ``lcbot run --transport console``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.procs import bots, lcbot, lcbot_json, make_project, one_line, query, wait_until


@pytest.fixture
def team(tmp_path: Path) -> Path:
    return make_project(tmp_path / "bot")


def alert(project: Path, text: str, *labels: str) -> int:
    args = [item for label in labels for item in ("--label", label)]
    done = lcbot(project, "alert", text, "--level", "critical", *args)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def routed(project: Path, alert_id: int) -> dict | None:
    (state, outcome), *_ = query(
        project, "SELECT state, outcome FROM alerts WHERE id = ?", (alert_id,)
    )
    return None if state == "new" else json.loads(outcome)


def test_silence_add_list_expire_and_bad_input(team):
    added = lcbot(
        team,
        "silence",
        "add",
        "host=db1",
        'alertname=~"Disk.*"',
        "--duration",
        "2h",
        "--comment",
        "x",
    )
    assert added.returncode == 0, added.stderr
    sid = added.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{6}", sid)
    (listed,) = lcbot_json(team, "silence", "list")
    assert listed["id"] == sid and listed["active"] is True
    assert listed["matchers"] == ['host="db1"', 'alertname=~"Disk.*"']
    assert listed["comment"] == "x" and listed["author"]
    assert listed["until"] - listed["starts"] == 7200

    bad = {
        ("host=~(a+)+",): "regex in matcher",
        ("1host=x",): "bad matcher",
        ("host=db1", "--duration", "forever"): "--duration",
        ("host=db1", "--comment", " "): "--comment",
    }
    for args, part in bad.items():
        full = [*args] + [o for o in ("--duration", "1h") if "--duration" not in args]
        full += [] if "--comment" in args else ["--comment", "c"]
        done = lcbot(team, "silence", "add", *full)
        assert done.returncode == 2, (args, done.stderr)
        assert part in one_line(done.stderr), done.stderr
    assert len(lcbot_json(team, "silence", "list")) == 1  # nothing added

    assert lcbot(team, "silence", "expire", sid).returncode == 0
    assert lcbot_json(team, "silence", "list") == []
    (ended,) = lcbot_json(team, "silence", "list", "--expired")
    assert ended["id"] == sid and ended["active"] is False
    again = lcbot(team, "silence", "expire", sid)
    assert again.returncode == 2 and sid in one_line(again.stderr)


def test_running_bot_picks_up_cli_silences_and_their_expiry(team):
    with bots() as start:
        bot = start(team)
        bot.send("whoami")
        bot.expect("me (root)")
        added = lcbot(team, "silence", "add", "host=db1", "--duration", "1h", "--comment", "m")
        sid = added.stdout.strip()

        # within ~RELOAD seconds the bot silences alerts for host=db1, not others
        def silenced() -> bool:
            outcome = wait_until(lambda: routed(team, alert(team, "probe", "host=db1")), "routed")
            return outcome == {"state": "silenced", "silence": sid}

        wait_until(silenced, "the CLI's silence in force", timeout=5, every=0.3)
        other = alert(team, "db2 disk", "host=db2")
        assert wait_until(lambda: routed(team, other), "routed")["state"] == "delivered"

        assert lcbot(team, "silence", "expire", sid).returncode == 0

        def delivered() -> bool:
            outcome = wait_until(lambda: routed(team, alert(team, "after", "host=db1")), "routed")
            return outcome["state"] == "delivered"

        wait_until(delivered, "the expiry seen by the bot", timeout=5, every=0.3)
        bot.end_input()
        assert bot.wait() == 0
        assert "Traceback" not in bot.stderr


def test_cli_alert_labels_are_stored_and_shown(team):
    alert_id = alert(team, "disk full", "host=db1", "team=web")
    (recent,) = lcbot_json(team, "alerts", "recent")
    assert recent["id"] == alert_id
    assert recent["labels"] == {"host": "db1", "team": "web"}
    bad = {
        "host": "expected NAME=VALUE",
        "1x=a": "label name",
        "host=" + "v" * 201: "longer than 200",
    }
    for label, part in bad.items():
        done = lcbot(team, "alert", "x", "--label", label)
        assert done.returncode == 2, done.stderr
        line = one_line(done.stderr)
        assert "label" in line and part in line, line
    twice = lcbot(team, "alert", "x", "--label", "a=1", "--label", "a=2")
    assert twice.returncode == 2 and "a given twice" in one_line(twice.stderr)
    assert len(lcbot_json(team, "alerts", "recent")) == 1  # nothing stored
