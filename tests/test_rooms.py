"""Group chats as alert recipients, in-process: the ``room`` and ``rooms`` commands, storage
in lcbot.toml and its reload, routing by level, hooks naming ``room:<id>``, silences,
de-duplication and outcomes. Real bots (``lcbot.testing``) on a real lcbot.toml and SQLite."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from lcbot import config, hookimpl
from lcbot.errors import ConfigError
from lcbot.rooms import Room, parse_rooms, remove_room, set_room

OPS, DEV = "4242@chatroom", "777@chatroom"
IN_GROUP = "room failed: send it in the group chat that should get alerts (@-mention the bot there)"


def toml_of(bot) -> str:
    return bot.app.config.path.read_text()


def stored_rooms(bot) -> list[Room]:
    return config.load(bot.app.config.path).rooms


def to_room(bot, room_id: str) -> list[str]:
    """The alerts delivered to the room (not the answers to commands sent there)."""
    levels = ("INFO ", "WARNING ", "CRITICAL ", "RESOLVED ")
    return [t for r, t in bot.sent if r == f"room:{room_id}" and t.startswith(levels)]


# --- the commands ---------------------------------------------------------------------------


def test_an_admin_sets_alerts_in_a_group_and_the_file_keeps_them(lcbot_bot):
    bot = lcbot_bot()  # alice root, bob admin, carol user
    path = bot.app.config.path
    os.chmod(path, 0o640)
    assert bot.send("bob", "room alerts warning", room=OPS, topic="ops team") == [
        "ops team (4242@chatroom) now gets warning and critical alerts"
    ]
    assert stored_rooms(bot) == [Room(OPS, "warning", "ops team")]
    assert '[[rooms]]\nid = "4242@chatroom"\ntopic = "ops team"\nalerts = "warning"\n' in (
        toml_of(bot)
    )
    assert os.stat(path).st_mode & 0o777 == 0o640  # the file keeps its mode
    assert bot.lines("alice") == ["bob set room: alerts warning"]  # a SET: others are told
    # again, from root, with a new level; no topic known this time: the stored one stays
    assert bot.send("alice", "ROOM Alerts CRITICAL", room=OPS) == [
        "ops team (4242@chatroom) now gets critical alerts"
    ]
    assert stored_rooms(bot) == [Room(OPS, "critical", "ops team")]
    assert bot.send("alice", "room alerts info", room=DEV) == [
        f"{DEV} now gets info and warning and critical alerts"
    ]
    assert [r.id for r in stored_rooms(bot)] == [OPS, DEV]
    assert bot.send("bob", "rooms") == [  # in a private chat too
        "group chats getting alerts:\n"
        f"ops team — {OPS} — critical and above\n(no topic) — {DEV} — info and above"
    ]
    assert bot.send("bob", "room off", room=OPS) == ["ops team (4242@chatroom) gets no more alerts"]
    assert bot.send("bob", "room off", room=OPS) == ["this group got no alerts"]
    assert stored_rooms(bot) == [Room(DEV, "info")]
    bot.send("bob", "room off", room=DEV)
    assert "rooms" not in config.read_raw(path)  # the last one leaves no empty array
    assert bot.send("bob", "rooms") == ["no group chat gets alerts; send room alerts LEVEL in one"]


def test_a_plain_user_cannot_set_or_list_rooms(lcbot_bot):
    bot = lcbot_bot()
    before = toml_of(bot)
    assert bot.send("carol", "room alerts critical", room=OPS, topic="ops") == ["not allowed: room"]
    assert bot.send("carol", "room off", room=OPS) == ["not allowed: room"]
    assert bot.send("carol", "rooms") == ["not allowed: rooms"]
    assert toml_of(bot) == before
    help_text = bot.send("carol", "help")[0]
    assert "room" not in help_text
    admin_help = bot.send("bob", "help")[0]
    assert "room alerts LEVEL | room off — in a group chat" in admin_help
    assert "rooms — list the group chats that get alerts" in admin_help


def test_room_commands_outside_a_group_or_with_bad_words(lcbot_bot):
    bot = lcbot_bot()
    before = toml_of(bot)
    assert bot.send("bob", "room alerts warning") == [IN_GROUP]
    assert bot.send("bob", "room off") == [IN_GROUP]
    usage = "room failed: usage: room alerts LEVEL (info, warning, critical) or room off"
    assert bot.send("bob", "room alerts loud", room=OPS) == [usage]
    assert bot.send("bob", "room alerts", room=OPS) == [usage]
    assert bot.send("bob", "room", room=OPS) == [
        "usage: room alerts LEVEL | room off — in a group chat: send it alerts of LEVEL and "
        "above; off: stop"
    ]
    assert toml_of(bot) == before
    assert bot.lines("alice") == []  # nothing was set: nobody is told


# --- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("least", "gets"),
    [
        ("info", ["info", "warning", "critical"]),
        ("warning", ["warning", "critical"]),
        ("critical", ["critical"]),
    ],
)
def test_a_room_gets_its_level_and_above(lcbot_bot, least, gets):
    bot = lcbot_bot()
    bot.send("bob", f"room alerts {least}", room=OPS, topic="ops")
    for level in ("info", "warning", "critical"):
        alert = bot.alert(f"{level} thing", level=level)
        outcome = bot.harness.outcome(alert)
        assert outcome["state"] == "delivered"  # alice (root) gets every level by default
        assert outcome.get("rooms", []) == ([{"id": OPS, "topic": "ops"}] if level in gets else [])
    assert to_room(bot, OPS) == [f"{level.upper()} {level} thing" for level in gets]


def test_a_hook_can_send_to_a_listed_or_an_unlisted_room(lcbot_bot):
    class Rooms:
        __name__ = "rooms_hook"

        @hookimpl
        def on_alert(self, alert):
            if alert.key == "ops":
                alert.recipients = [f"room:{OPS}"]
            elif alert.key == "adhoc":
                alert.recipients = ["carol", "room:555@chatroom", "room:555@chatroom"]
            elif alert.key == "typo":
                alert.recipients = ["room:", "room:has space", "nobody"]

    bot = lcbot_bot(plugins=[Rooms()])
    bot.send("bob", "room alerts critical", room=OPS, topic="ops")
    listed = bot.alert("to ops only", level="info", key="ops")  # below the room's level
    assert bot.harness.outcome(listed) == {
        "state": "delivered",
        "to": [],
        "rooms": [{"id": OPS, "topic": "ops"}],
    }
    adhoc = bot.alert("to an unlisted room", level="warning", key="adhoc")
    assert bot.harness.outcome(adhoc) == {
        "state": "delivered",
        "to": ["carol"],
        "rooms": [{"id": "555@chatroom", "topic": None}],
    }
    assert to_room(bot, "555@chatroom") == ["WARNING to an unlisted room"]  # once
    typo = bot.alert("to nowhere", level="critical", key="typo")
    assert bot.harness.outcome(typo) == {
        "state": "no recipients",
        "to": [],
        "unknown": ["room:", "room:has space", "nobody"],
    }
    assert to_room(bot, OPS) == ["INFO to ops only"]


def test_silences_and_dedup_apply_to_rooms(lcbot_bot):
    bot = lcbot_bot(config={"alerts": {"repeat_interval": 600}})
    bot.send("bob", "room alerts warning", room=OPS, topic="ops")
    assert bot.send("bob", "silence disk:/ 1h") == ["silenced disk:/ for 1h"]
    silenced = bot.alert("disk full", level="critical", key="disk:/")
    assert bot.harness.outcome(silenced) == {"state": "silenced"}
    assert bot.send("bob", "unsilence disk:/") == ["unsilenced disk:/"]
    first = bot.alert("disk 91%", level="critical", key="disk:/")
    repeat = bot.alert("disk 92%", level="critical", key="disk:/")
    assert bot.harness.outcome(first)["rooms"] == [{"id": OPS, "topic": "ops"}]
    assert bot.harness.outcome(repeat) == {"state": "deduplicated"}
    assert to_room(bot, OPS) == ["CRITICAL disk 91%"]
    bot.app.router.keys["disk:/"] = (time.time() - 601, 1, time.time() - 601)
    bot.alert("disk 95%", level="critical", key="disk:/")
    assert to_room(bot, OPS)[-1].startswith("CRITICAL disk 95% (repeated 1× since ")
    bot.alert("disk 40%", level="warning", key="disk:/", resolved=True)
    assert to_room(bot, OPS)[-1] == "RESOLVED disk 40%"


def test_a_mute_is_per_user_and_leaves_rooms_alone(lcbot_bot):
    bot = lcbot_bot()
    bot.send("bob", "room alerts warning", room=OPS)
    bot.send("bob", "mute 1h")
    alert = bot.alert("lag", level="warning")
    assert bot.harness.outcome(alert) == {
        "state": "delivered",
        "to": ["alice"],
        "muted": ["bob"],
        "rooms": [{"id": OPS, "topic": None}],
    }


# --- persistence and reload -----------------------------------------------------------------


def test_rooms_survive_a_restart(lcbot_bot):
    bot = lcbot_bot()
    bot.send("bob", "room alerts warning", room=OPS, topic="ops")
    bot.restart()
    bot.alert("after restart", level="warning")
    assert to_room(bot, OPS) == ["WARNING after restart"]


def test_an_edit_of_lcbot_toml_reaches_the_running_bot(lcbot_bot):
    bot = lcbot_bot()
    with config.edit(bot.app.config.path) as raw:  # another process: `lcbot room remove`, …
        set_room(raw, DEV, "critical", "dev")
    deadline = time.monotonic() + 20
    while not list(bot.app.bot("test").rooms) and time.monotonic() < deadline:
        bot._run(asyncio.sleep(0.05))  # the roster's watch re-reads the file
    assert [r.label for r in bot.app.bot("test").rooms] == ["dev (777@chatroom)"]
    bot.alert("now routed", level="critical")
    assert to_room(bot, DEV) == ["CRITICAL now routed"]
    path = bot.app.config.path
    path.write_text(toml_of(bot).replace('alerts = "critical"', 'alerts = "loud"'))
    bot._run(asyncio.sleep(1.2))  # an invalid file is reported; the rooms stay
    assert [r.id for r in bot.app.bot("test").rooms] == [DEV]


# --- the [[rooms]] array ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('rooms = "x"', r"'rooms' must be an array of tables"),
        ('[[rooms]]\nalerts = "info"', r"rooms\[0\]: invalid room id None"),
        ('[[rooms]]\nid = "a b"\nalerts = "info"', r"rooms\[0\] \(a b\): invalid room id"),
        ('[[rooms]]\nid = "r1"', r"rooms\[0\] \(r1\): unknown alert level None"),
        ('[[rooms]]\nid = "r1"\nalerts = "loud"', r"unknown alert level 'loud'"),
        ('[[rooms]]\nid = "r1"\nalerts = "info"\ntopic = 3', r"topic must be a text"),
        (
            '[[rooms]]\nid = "r1"\nalerts = "info"\n[[rooms]]\nid = "r1"\nalerts = "info"',
            r"rooms\[1\]: duplicate room id 'r1'",
        ),
    ],
)
def test_bad_rooms_are_named(tmp_path, text, message):
    path = tmp_path / "lcbot.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        config.load(path)


def test_edits_keep_unknown_keys_and_clean_topics():
    doc = {"rooms": [{"id": "r1", "alerts": "info", "note": "kept"}]}
    assert set_room(doc, "r1", "warning", "  a\ttopic\n ") == Room("r1", "warning", "a topic")
    assert doc["rooms"] == [{"id": "r1", "alerts": "warning", "note": "kept", "topic": "a topic"}]
    assert parse_rooms(doc["rooms"], "x") == [Room("r1", "warning", "a topic")]
    assert set_room(doc, "r2", "info", "x" * 500).topic == "x" * 200
    assert remove_room(doc, "nope") is None
    assert remove_room(doc, "r1") == Room("r1", "warning", "a topic")
    with pytest.raises(ValueError, match="unknown alert level"):
        set_room(doc, "r3", "loud", None)
