"""End to end on WeChat: a real ``lcbot run --transport wechaty`` process (python-wechaty)
against the real Node puppet-service server of tests/wechaty_server. Bounded waits only.

Marked ``wechat``: CI also runs these on a second Python (3.13).
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest

from tests.procs import lcbot, wait_until

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from tests.wechat_kit import (
    BOB,
    BOT,
    BOT_NAME,
    CAROL,
    DORA,
    ME,
    ROOM,
    SPOOF,
    STRANGER,
    WAIT,
    WeChatBot,
    project_with_users,
    texts_to,
    wait_text,
)

pytestmark = pytest.mark.wechat


def test_commands_privileges_and_spoofing(server, wechat_bot, tmp_path):
    bot = wechat_bot(project_with_users(tmp_path / "p"))
    assert "logged in to WeChat as LcBot (wxid_lcbot)" in bot.output
    server.say(ME, "help")
    help_text = wait_text(server, ME, lambda t: t == "commands:", "help")
    assert help_text
    assert any(t.startswith("quit — ") for t in texts_to(server, ME))
    server.say(ME, "status")
    wait_text(server, ME, lambda t: t.startswith("up ") and "interval 60s" in t, "status")
    server.say(CAROL, "interval:5")
    wait_text(server, CAROL, lambda t: t == "not allowed: interval", "refusal")
    server.say(BOB, "interval:5")
    wait_text(server, BOB, lambda t: t == "interval set to 5s", "interval")
    wait_text(server, ME, lambda t: t == "bob set interval: 5", "notice to root")
    server.say(STRANGER, "help")  # not a user
    server.say(SPOOF, "status")  # display name "bob", another contact id
    server.say(SPOOF, "interval:1")
    server.say(ME, "whoami")  # a marker: answered after the three above were handled
    wait_text(server, ME, lambda t: t == "me (root)", "whoami")
    assert texts_to(server, STRANGER) == [] and texts_to(server, SPOOF) == []
    assert all(m["to"] in (ME, BOB, CAROL) for m in server.sent())
    assert bot.stop() == 0
    assert "WECHATY_PUPPET_SERVICE_TOKEN" not in bot.output
    assert server.token not in bot.output  # the token is never logged


def test_pairing_binds_a_new_contact(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p")
    added = lcbot(project, "user", "add", "dora", "--pri", "user")
    assert added.returncode == 0, added.stderr
    code = re.search(r"`bind ([A-Z0-9-]+)`", added.stdout)[1]
    bot = wechat_bot(project)
    server.say(DORA, "status")  # not bound yet: no answer
    server.say(DORA, "bind 22222-22222")
    wait_text(server, DORA, lambda t: t == "invalid or expired code", "refusal")
    server.say(DORA, f"bind {code}")
    wait_text(server, DORA, lambda t: t == "bound: you are dora (user); send help", "welcome")
    users = tomllib.loads((project / "lcbot.toml").read_text())["users"]
    assert {"name": "dora", "pri": "user", "wxid": DORA} in users
    server.say(DORA, "whoami")
    wait_text(server, DORA, lambda t: t == "dora (user)", "whoami")
    assert not any(t.startswith("up ") for t in texts_to(server, DORA))  # first status ignored
    # brute force: 5 wrong codes are refused, then the contact is ignored
    for i in range(7):
        server.say(STRANGER, f"bind AAAA{i}-AAAAA")
    server.say(ME, "whoami")
    wait_text(server, ME, lambda t: t == "me (root)", "marker")
    wait_until(lambda: len(texts_to(server, STRANGER)) >= 5, "5 refusals", WAIT)
    time.sleep(0.5)
    assert texts_to(server, STRANGER) == ["invalid or expired code"] * 5
    bot.stop()


def test_alert_from_another_process_reaches_every_bound_user(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p")
    assert lcbot(project, "user", "add", "erin", "--pri", "user").returncode == 0  # unbound
    wechat_bot(project)
    raised = lcbot(project, "alert", "disk full", "--level", "critical", **server.env())
    assert raised.returncode == 0, raised.stderr
    for contact in (ME, BOB, CAROL):
        wait_text(server, contact, lambda t: t == "CRITICAL disk full", "alert")
    recent = lcbot(project, "alerts", "recent", "--json")
    (alert,) = [a for a in json.loads(recent.stdout) if a["text"] == "disk full"]
    assert sorted(alert["outcome"]["to"]) == ["bob", "carol", "me"]
    assert alert["outcome"]["unbound"] == ["erin"]


def test_rooms_need_a_mention(server, wechat_bot, tmp_path):
    wechat_bot(project_with_users(tmp_path / "p"))
    server.say_in_room(ROOM, ME, "whoami")  # no mention: ignored
    server.say_in_room(ROOM, STRANGER, "whoami", mention=True)  # not a user: ignored
    server.say_in_room(ROOM, BOB, "whoami", mention=True)
    wait_text(server, ROOM, lambda t: t == "bob (admin)", "room reply")
    server.say(ME, "whoami")
    wait_text(server, ME, lambda t: t == "me (root)", "marker")
    assert texts_to(server, ROOM) == ["bob (admin)"]


def test_room_replies_private(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p")
    toml = project / "lcbot.toml"
    toml.write_text(
        toml.read_text().replace('rooms = "mention"', 'rooms = "mention"\nroom_replies = "private"')
    )
    wechat_bot(project)
    server.say_in_room(ROOM, CAROL, "whoami", mention=True)
    wait_text(server, CAROL, lambda t: t == "carol (user)", "private reply")
    assert texts_to(server, ROOM) == []


def test_reconnects_and_delivers_alerts_raised_while_down(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p")
    bot = wechat_bot(project)
    server.stop()
    bot.wait_log(r"WeChat connection lost|puppet service (closed|connection failed)")
    for i in range(3):
        assert lcbot(project, "alert", f"while down {i}", "--level", "critical").returncode == 0
    started = time.monotonic()
    server.restart()  # a new gateway process: the account must be scanned in again
    server.login(BOT, BOT_NAME)
    bot.wait_logged_in(count=2)
    for contact in (ME, BOB, CAROL):
        for i in range(3):
            wait_text(server, contact, lambda t, i=i: t == f"CRITICAL while down {i}", "alert")
    assert time.monotonic() - started < WAIT
    # while the server was gone: one line per reason, not one (or three) per attempt
    failures = re.findall(r"WARNING lcbot.wechaty: WeChat: (.*); retrying with backoff", bot.output)
    assert failures and len(failures) == len(set(failures)), bot.output
    assert "WARNING wechaty" not in bot.output and "WARNING PuppetService" not in bot.output
    assert bot.stop() == 0


UNRELATED = "ghp_UNRELATED_SECRET_0123456789"


def test_generic_variables_are_neither_sent_nor_logged(server, wechat_bot, tmp_path):
    """python-wechaty reads TOKEN, token, ENDPOINT and endpoint when lcbot's own are not
    set, and logs what it found; lcbot passes only its configured endpoint and token."""
    project = project_with_users(tmp_path / "p")
    toml = project / "lcbot.toml"  # the token in a variable of its own: the generic ones show
    toml.write_text(toml.read_text().replace("[wechaty]\n", '[wechaty]\ntoken_env = "MY_TOKEN"\n'))
    shadows = {
        "MY_TOKEN": server.token,
        "WECHATY_PUPPET_SERVICE_TOKEN": "",
        "TOKEN": UNRELATED,
        "token": UNRELATED,
        "ENDPOINT": "127.0.0.1:9",
        "endpoint": "x",
    }
    bot = wechat_bot(project, env=shadows)
    server.say(ME, "whoami")
    wait_text(server, ME, lambda t: t == "me (root)", "whoami")  # the configured ones won
    bot.stop()
    assert UNRELATED not in bot.output


def test_without_a_token_no_other_variable_is_used(server, tmp_path):
    project = project_with_users(tmp_path / "p")
    env = {"WECHATY_PUPPET_SERVICE_TOKEN": "", "TOKEN": UNRELATED, "token": UNRELATED}
    bot = WeChatBot(project, server, env)
    try:
        wait_until(lambda: "puppet service connection failed" in bot.output, "a refusal", WAIT)
        bot.stop()
        assert UNRELATED not in bot.output
    finally:
        bot.stop()
        bot.log.close()
