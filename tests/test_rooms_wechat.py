"""End to end on WeChat: a group chat set with ``@bot room alerts LEVEL`` gets alerts from
another process (``lcbot alert``), through a real ``lcbot run --transport wechaty`` and the
real Node puppet-service test server (the ``server`` and ``wechat_bot`` fixtures)."""

from __future__ import annotations

import pytest

from lcbot import config
from tests.procs import lcbot
from tests.wechat_kit import BOB, CAROL, ME, ROOM, project_with_users, texts_to, wait_text

pytestmark = pytest.mark.wechat


def test_a_group_set_by_an_admin_gets_alerts_on_wechat(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p")
    wechat_bot(project)
    server.say_in_room(ROOM, CAROL, "room alerts info", mention=True)  # a plain user
    wait_text(server, ROOM, lambda t: t == "not allowed: room", "refusal")
    server.say_in_room(ROOM, BOB, "room alerts warning", mention=True)
    wait_text(server, ROOM, lambda t: t.endswith("now gets warning and critical alerts"), "set")
    (room,) = config.load(project / "lcbot.toml").rooms
    assert (room.id, room.topic, room.alerts) == (ROOM, "ops", "warning")  # topic from WeChat

    for text, level in (("backup done", "info"), ("replica lag", "warning")):
        result = lcbot(project, "alert", text, "--level", level)
        assert result.returncode == 0, result.stderr
    wait_text(server, ROOM, lambda t: t == "WARNING replica lag", "warning in the group")
    wait_text(server, ME, lambda t: t == "INFO backup done", "info to root")
    assert "INFO backup done" not in texts_to(server, ROOM)

    server.say_in_room(ROOM, BOB, "room off", mention=True)
    wait_text(server, ROOM, lambda t: t.endswith("gets no more alerts"), "off")
    assert config.load(project / "lcbot.toml").rooms == []
    lcbot(project, "alert", "after off", "--level", "critical")
    wait_text(server, ME, lambda t: t == "CRITICAL after off", "critical to root")
    wait_text(server, BOB, lambda t: t == "CRITICAL after off", "critical to bob")
    assert "CRITICAL after off" not in texts_to(server, ROOM)
