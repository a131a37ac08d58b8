"""LinkStore (the private link files) and the users' ``ilink`` id: parsing, look-up, the
roster's identity ``"ilink"``."""

from __future__ import annotations

import os
import re
import stat

import pytest

from lcbot.errors import ConfigError, UsageError
from lcbot.ilink.store import Link, LinkStore, new_link
from lcbot.roster import Roster
from lcbot.transports.base import Address, Incoming
from lcbot.users import Directory, Pri, User, parse_users, set_ilink


def a_link(user: str = "alice", token: str = "t-1", bot: str = "b1@im.bot") -> Link:
    return Link(user, token, bot, "http://127.0.0.1:1", "u-alice@im.wechat", 1700000000.0)


def test_save_load_all_remove(tmp_path):
    store = LinkStore(tmp_path / "data")
    assert store.all() == [] and store.load("alice") is None and store.stamp() == ()
    path = store.save(a_link())
    assert path == tmp_path / "data" / "ilink" / "alice.link.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
    assert store.load("ALICE") == a_link()  # names are case-insensitive
    store.save(a_link("Bob"))
    assert [link.user for link in store.all()] == ["alice", "Bob"]
    store.state_path("alice").write_text("{}")
    assert store.remove("alice") is True
    assert sorted(os.listdir(store.folder)) == ["bob.link.json"]
    assert store.remove("alice") is False


def test_stamp_changes_with_every_link_change(tmp_path):
    store = LinkStore(tmp_path)
    stamps = {store.stamp()}
    store.save(a_link())
    stamps.add(store.stamp())
    store.save(a_link(token="t-2", bot="b2@im.bot"))  # a new scan replaces the file
    stamps.add(store.stamp())
    store.state_path("alice").write_text("{}")  # the transport's state does not count
    assert store.stamp() in stamps
    store.remove("alice")
    stamps.add(store.stamp())
    assert len(stamps) == 3 + 1 - 1  # (), one link, its replacement; removal is () again


def test_a_damaged_link_file_is_ignored(tmp_path, caplog):
    store = LinkStore(tmp_path)
    store.save(a_link())
    store.ensure_folder()
    (store.folder / "bob.link.json").write_text('{"user": "bob"}')
    (store.folder / "carol.link.json").write_text("not json")
    assert [link.user for link in store.all()] == ["alice"]
    assert store.load("bob") is None
    assert "bot_token must be a non-empty text" in caplog.text


def test_odd_names_stay_inside_the_folder(tmp_path):
    store = LinkStore(tmp_path)
    for name in ("../evil", "a/b", "..", "."):
        path = store.save(a_link(name))
        assert path.parent == store.folder
        assert store.load(name).user == name
    assert sorted(link.user for link in store.all()) == sorted(["../evil", "a/b", "..", "."])


def test_the_token_is_not_in_the_repr():
    assert "t-1" not in repr(a_link())


def test_new_link_from_a_confirmed_status():
    confirmed = {
        "status": "confirmed",
        "bot_token": "tok",
        "ilink_bot_id": "b@im.bot",
        "baseurl": "https://api.example",
        "ilink_user_id": "u@im.wechat",
    }
    link = new_link("alice", confirmed, "https://configured")
    assert (link.bot_token, link.bot_id, link.base_url, link.ilink_user_id) == (
        "tok",
        "b@im.bot",
        "https://api.example",
        "u@im.wechat",
    )
    assert new_link("alice", {**confirmed, "baseurl": ""}, "https://c").base_url == "https://c"


# --- users ----------------------------------------------------------------------------------


def test_users_parse_the_ilink_id():
    users = parse_users(
        [
            {"name": "alice", "pri": "root", "ilink": "u-a@im.wechat"},
            {"name": "bob", "pri": "user"},
        ],
        "lcbot.toml",
    )
    assert users[0].ilink == "u-a@im.wechat" and users[1].ilink is None
    assert users[0].to_json()["ilink"] == "u-a@im.wechat"
    directory = Directory(users)
    assert directory.by_ilink("u-a@im.wechat") is users[0]
    assert directory.by_ilink("nobody") is None


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"name": "a", "pri": "user", "ilink": 5}], "users[0] (a): invalid ilink 5"),
        ([{"name": "a", "pri": "user", "ilink": "x y"}], "invalid ilink 'x y'"),
        (
            [
                {"name": "a", "pri": "user", "ilink": "u1"},
                {"name": "b", "pri": "user", "ilink": "u1"},
            ],
            "users[1] (b): ilink 'u1' is already used by another user",
        ),
    ],
)
def test_bad_ilink_ids_are_refused(entries, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_users(entries, "lcbot.toml")


def test_set_ilink():
    doc = {"users": [{"name": "alice", "pri": "root"}, {"name": "bob", "pri": "user"}]}
    assert set_ilink(doc, "Alice", "u1").ilink == "u1"
    assert doc["users"][0]["ilink"] == "u1"
    with pytest.raises(UsageError, match="already linked to 'alice'"):
        set_ilink(doc, "bob", "u1")
    assert set_ilink(doc, "alice", None).ilink is None
    assert "ilink" not in doc["users"][0]


def test_roster_by_ilink(tmp_path):
    config = tmp_path / "lcbot.toml"
    config.write_text(
        '[[users]]\nname = "alice"\npri = "root"\nilink = "u-a"\n'
        '[[users]]\nname = "bob"\npri = "user"\nwxid = "wxid_b"\n'
    )
    users = [User("alice", Pri.ROOT, ilink="u-a"), User("bob", Pri.USER, wxid="wxid_b")]
    roster = Roster(users, "ilink", config)
    assert roster.identify(Incoming(sender_id="u-a", sender_name="A", text="x")).name == "alice"
    assert roster.identify(Incoming(sender_id="wxid_b", sender_name="bob", text="x")) is None
    assert roster.address("alice") == Address("contact", "u-a", "alice")
    assert roster.address("bob") is None
    assert [u.name for u in roster.reachable_users()] == ["alice"]
    roster.bind("bob", "u-b")  # identity "ilink" binds the iLink id, not a wxid
    bob = roster.directory.by_name("bob")
    assert bob is not None and bob.ilink == "u-b" and bob.wxid == "wxid_b"
    by_id = Roster(users, "id", config)
    assert by_id.address("alice") is None and by_id.address("bob").id == "wxid_b"
