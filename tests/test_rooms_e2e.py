"""End to end: group chats as alert recipients through real ``lcbot run --transport
console`` (a line ``[room:ID TOPIC] TEXT`` is sent in a group), ``lcbot alert``,
``lcbot room …`` and ``lcbot alerts recent`` processes on a real lcbot.toml and SQLite file.

Every wait is bounded by a deadline; see ``tests/procs.py``.
"""

from __future__ import annotations

import json
import time

from tests.procs import WAIT, bots, lcbot, lcbot_json, make_project, one_line, run_console
from tests.test_alerts_e2e import expect_all

OPS = "4242@chatroom"
IN_OPS = f"→ room:{OPS}: "


def raise_alert(project, text: str, level: str) -> int:
    result = lcbot(project, "alert", text, "--level", level)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def test_a_group_gets_alerts_from_the_console_to_lcbot_alerts_recent(tmp_path):
    project = make_project(tmp_path / "bot")  # me root, bob admin, carol user
    with bots() as start:
        bot = start(project)
        bot.send(f"[room:{OPS} ops team] room alerts warning")
        bot.expect(IN_OPS + "ops team (4242@chatroom) now gets warning and critical alerts")
        assert lcbot_json(project, "room", "list") == [
            {"id": OPS, "topic": "ops team", "alerts": "warning"}
        ]
        warning = raise_alert(project, "replica lag", "warning")
        expect_all(
            bot,
            ["WARNING replica lag", "→ bob: WARNING replica lag", IN_OPS + "WARNING replica lag"],
        )
        info = raise_alert(project, "backup done", "info")
        bot.expect("INFO backup done")  # root only: the room wants warning and above
        bot.send("[room:4242@chatroom] rooms")  # listed in the group too
        bot.expect(IN_OPS + "group chats getting alerts:")
        bot.expect(f"ops team — {OPS} — warning and above")

        removed = lcbot(project, "room", "remove", OPS)  # another process edits the file
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout == "removed ops team (4242@chatroom): it gets no more alerts\n"
        deadline = time.monotonic() + WAIT
        while True:  # the running bot re-reads lcbot.toml within a second
            bot.send("rooms")
            line = bot.expect(lambda s: s.startswith(("no group chat", "group chats")))
            if line.startswith("no group chat"):
                break
            bot.expect(lambda s: s.endswith("warning and above"))
            assert time.monotonic() < deadline, "the bot kept the removed room"
        after = raise_alert(project, "lag again", "warning")
        expect_all(bot, ["WARNING lag again", "→ bob: WARNING lag again"])
        bot.end_input()
        assert bot.wait() == 0
        assert not any("lag again" in line and "room:" in line for line in bot.rest())
        assert "Traceback" not in bot.stderr

    recent = {a["id"]: a for a in lcbot_json(project, "alerts", "recent")}
    assert recent[warning]["outcome"] == {
        "state": "delivered",
        "to": ["me", "bob"],
        "rooms": [{"id": OPS, "topic": "ops team"}],
    }
    assert recent[info]["outcome"] == {"state": "delivered", "to": ["me"]}
    assert recent[after]["outcome"] == {"state": "delivered", "to": ["me", "bob"]}
    table = lcbot(project, "alerts", "recent", COLUMNS="300")
    assert "delivered to me, bob, room ops team (4242@chatroom)" in table.stdout


def test_a_plain_user_cannot_make_a_group_get_alerts(tmp_path):
    project = make_project(tmp_path / "bot")
    before = (project / "lcbot.toml").read_text()
    result = run_console(
        project, f"[room:{OPS} ops] room alerts critical\nroom alerts info\n", "--as", "carol"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [IN_OPS + "not allowed: room", "not allowed: room"]
    assert (project / "lcbot.toml").read_text() == before
    admin = run_console(project, "room alerts info\n", "--as", "bob")
    assert admin.stdout == (
        "room failed: send it in the group chat that should get alerts (@-mention the bot there)\n"
    )
    assert (project / "lcbot.toml").read_text() == before


def test_bad_rooms_and_unknown_ids_are_one_line_exit_2(tmp_path):
    project = make_project(tmp_path / "bot", extra='[[rooms]]\nid = "r1"\nalerts = "loud"\n')
    path = project / "lcbot.toml"
    before = path.read_text()
    check = lcbot(project, "config", "check")
    assert check.returncode == 2
    assert one_line(check.stderr).endswith(
        "rooms[0] (r1): unknown alert level 'loud'; valid levels: info, warning, critical"
    )
    run = run_console(project, "whoami\n")
    assert run.returncode == 2 and "rooms[0] (r1)" in one_line(run.stderr)
    path.write_text(before.replace('"loud"', '"info"'))
    good = path.read_text()
    missing = lcbot(project, "room", "remove", "nope")
    assert missing.returncode == 2
    assert one_line(missing.stderr) == (
        "error: no room with id 'nope' gets alerts (see: lcbot room list)"
    )
    assert path.read_text() == good
    checked = lcbot(project, "config", "check")
    assert checked.returncode == 0, checked.stderr
    assert "  rooms: 1 group chat(s) get alerts (lcbot room list)\n" in checked.stdout
    listed = lcbot(project, "room", "list")
    assert listed.returncode == 0 and "r1" in listed.stdout and "info and above" in listed.stdout
    assert json.loads(lcbot(project, "room", "list", "--json").stdout)[0]["id"] == "r1"
