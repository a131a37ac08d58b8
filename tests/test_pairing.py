"""Pairing codes and ``bind CODE``: contact ids get into lcbot.toml safely."""

from __future__ import annotations

import asyncio
import sys

from lcbot import pairing
from lcbot.db import DB_NAME, connect
from lcbot.testing import Harness
from tests.procs import lcbot

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def test_codes_are_random_hashed_single_use_and_expire(tmp_path):
    db = connect(tmp_path / "lcbot.db")
    code = pairing.issue(db, "alice", now=1000.0)
    raw = pairing.normalize(code)
    assert len(raw) == 10 and set(raw) <= set(pairing.ALPHABET)
    other = connect(tmp_path / "other.db")
    seen = set().union(*(pairing.normalize(pairing.issue(other, f"u{i}")) for i in range(300)))
    assert not set("01OIL") & seen and seen <= set(pairing.ALPHABET)
    stored = [row[0] for row in db.execute("SELECT code_hash FROM pairing")]
    assert stored and raw not in stored[0] and len(stored[0]) == 64  # only a sha256
    assert pairing.redeem(db, code.lower().replace("-", " "), now=2000.0) == "alice"
    assert pairing.redeem(db, code, now=2000.0) is None  # single use
    late = pairing.issue(db, "bob", now=1000.0)
    assert pairing.redeem(db, late, now=1000.0 + 24 * 3600 + 1) is None  # expired
    first = pairing.issue(db, "carol", now=1000.0)
    second = pairing.issue(db, "carol", now=1001.0)
    assert pairing.redeem(db, first, now=1002.0) is None  # replaced by the fresh one
    assert pairing.redeem(db, second, now=1002.0) == "carol"
    assert pairing.issue(db, "x") != pairing.issue(db, "y")
    assert pairing.redeem(db, "not-a-code") is None


def test_throttle_counts_in_the_database(tmp_path):
    db = connect(tmp_path / "lcbot.db")
    good = pairing.issue(db, "alice", now=0.0)
    for i in range(5):
        assert pairing.attempt(db, "c", f"bind AAAA{i}-AAAAA", now=10.0 + i) is None
    assert pairing.attempt(db, "c", good, now=20.0) is pairing.BLOCKED  # even the right code
    db.close()
    again = connect(tmp_path / "lcbot.db")  # a restart does not reset the count
    assert pairing.attempt(again, "c", good, now=30.0) is pairing.BLOCKED
    assert pairing.attempt(again, "other", good, now=30.0) == "alice"
    assert pairing.attempt(again, "c", "x", now=3700.0) is None  # the hour has passed


def test_codes_are_keyed_hashes_with_a_private_key(tmp_path):
    import hashlib
    import stat

    db = connect(tmp_path / "lcbot.db")
    code = pairing.normalize(pairing.issue(db, "alice"))
    (stored,) = [row[0] for row in db.execute("SELECT code_hash FROM pairing")]
    assert stored != hashlib.sha256(code.encode()).hexdigest()  # not a plain hash
    key = tmp_path / pairing.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) == 64
    other = connect(tmp_path / "elsewhere" / "lcbot.db")
    assert pairing.secret(other) != pairing.secret(db)  # per install


async def start_app(path):
    """A bot on ``path`` that recognises senders by contact id (as on WeChat)."""
    bot = await Harness(path.parent, toml=path, identity="id").start()
    return bot.app, bot.transport


def write_config(tmp_path):
    path = tmp_path / "lcbot.toml"
    path.write_text(
        '[bot]\ndata_dir = "data"\n\n[[users]]\nname = "root"\npri = "root"\nwxid = "wx_root"\n\n'
        '[[users]]\nname = "alice"\npri = "admin"\n\n[[users]]\nname = "bob"\npri = "user"\n'
        "\n[custom]\nkeep = true\n"
    )
    return path


def test_bind_writes_contact_id_and_commands_work(tmp_path):
    path = write_config(tmp_path)

    async def go():
        app, transport = await start_app(path)
        try:
            db = connect(tmp_path / "data" / DB_NAME)
            code = pairing.issue(db, "alice")
            await transport.inject("wx_alice", "whoami", name="alice")  # not bound: silence
            assert await app.drain(5) and transport.sent == []
            await transport.inject("wx_alice", f"bind {code}", name="Alice W")
            assert await app.drain(5)
            assert transport.sent == [("alice", "bound: you are alice (admin); send help")]
            data = tomllib.loads(path.read_text())
            assert data["users"][1] == {"name": "alice", "pri": "admin", "wxid": "wx_alice"}
            assert data["custom"] == {"keep": True}
            await transport.inject("wx_alice", "whoami")
            assert await app.drain(5)
            assert transport.sent[-1] == ("alice", "alice (admin)")
            # the code was used up; another contact cannot reuse it
            await transport.inject("wx_mallory", f"bind {code}", name="alice")
            assert await app.drain(5)
            assert transport.sent[-1] == ("contact:wx_mallory", pairing.REFUSAL)
        finally:
            await app.stop(5)

    asyncio.run(go())


def test_wrong_codes_get_one_refusal_then_silence(tmp_path):
    path = write_config(tmp_path)

    async def go():
        app, transport = await start_app(path)
        try:
            db = connect(tmp_path / "data" / DB_NAME)
            good = pairing.issue(db, "bob")
            for guess in ("AAAAA-AAAAA", "short", "", "22222-22222", "zzzzz zzzzz"):
                await transport.inject("wx_bad", f"bind {guess}")
            assert await app.drain(5)
            refusals = [t for r, t in transport.sent if r == "contact:wx_bad"]
            assert "\n".join(refusals).split("\n") == [pairing.REFUSAL] * 5
            await transport.inject("wx_bad", f"bind {good}")  # even the right code: ignored now
            assert await app.drain(5)
            assert [t for r, t in transport.sent if r == "contact:wx_bad"] == refusals
            assert "wxid" not in tomllib.loads(path.read_text())["users"][2]
            await transport.inject("wx_bob", f"bind {good}")  # another contact is not blocked
            assert await app.drain(5)
            assert transport.sent[-1] == ("bob", "bound: you are bob (user); send help")
            await transport.inject("wx_bob", "silence disk 1h")
            assert await app.drain(5)
            assert transport.sent[-1] == ("bob", "not allowed: silence")
        finally:
            await app.stop(5)

    asyncio.run(go())


def test_name_spoofing_is_ignored(tmp_path):
    path = write_config(tmp_path)

    async def go():
        app, transport = await start_app(path)
        try:
            await transport.inject("wx_fake", "help", name="root")  # display name copied
            await transport.inject("wx_fake", "quit", name="root")
            assert await app.drain(5)
            assert transport.sent == []
            await transport.inject("wx_root", "whoami", name="someone else")
            assert await app.drain(5)
            assert transport.sent == [("root", "root (root)")]
        finally:
            await app.stop(5)

    asyncio.run(go())


def test_cli_user_add_prints_code_and_invite(cfg_path):
    added = lcbot(cfg_path.parent, "user", "add", "dora", "--pri", "user")
    assert added.returncode == 0, added.stderr
    assert "pairing code for dora (valid 24 h, single use): " in added.stdout
    code = added.stdout.split("single use): ")[1].split()[0]
    db = connect(cfg_path.parent / ".lcbot" / DB_NAME)
    invited = lcbot(cfg_path.parent, "user", "invite", "dora", "--json")
    assert invited.returncode == 0, invited.stderr
    import json

    fresh = json.loads(invited.stdout)["code"]
    assert fresh != code
    assert pairing.redeem(db, code) is None and pairing.redeem(db, fresh) == "dora"
    with_id = lcbot(cfg_path.parent, "user", "add", "eve", "--pri", "user", "--wxid", "wx_e")
    assert "pairing code" not in with_id.stdout
    missing = lcbot(cfg_path.parent, "user", "invite", "nobody")
    assert missing.returncode == 2 and "no user named 'nobody'" in missing.stderr


def test_code_in_a_friend_request_greeting():
    code = "ABCDE-FGHJK"
    for greeting in (f"bind {code}", code, f"hi, my code is {code.lower()}", "abcde fghjk"):
        assert pairing.normalize(pairing.code_in(greeting) or "") == "ABCDEFGHJK", greeting
    for greeting in ("", "hello, I am alice", "ABCDEFGHJKLM", "call 1234567890"):
        assert pairing.code_in(greeting) is None, greeting
    # a name of ten letters is not taken for the code
    assert pairing.code_in(f"I am Steve Unger, bind {code}") == code
    assert pairing.code_in(f"Steve Unger here: {code}") == code


def test_friend_request_admission_binds_and_shares_the_throttle(tmp_path):
    db = connect(tmp_path / "lcbot.db")
    code = pairing.issue(db, "alice")
    bound: list[tuple[str, str]] = []
    put: list[tuple[str, str]] = []

    class User:
        def __init__(self, name: str) -> None:
            self.name = name
            self.pri = type("P", (), {"label": "user"})()

    def bind(user: str, contact: str) -> User:
        bound.append((user, contact))
        return User(user)

    binder = pairing.Binder(
        lambda contact, text: pairing.attempt(db, contact, text), bind, lambda *a: put.append(a)
    )
    run = asyncio.run
    assert run(binder.admit("wx_a", "Alice", "hello there")) is None  # no code: not counted
    assert run(binder.admit("wx_a", "Alice", f"bind {code}")) == "alice"
    assert bound == [("alice", "wx_a")] and put[0][0] == "alice"
    for _ in range(pairing.MAX_FAILURES):
        assert run(binder.admit("wx_b", "Mallory", "bind 22222-22222")) is None
    fresh = pairing.issue(db, "bob")
    assert run(binder.admit("wx_b", "Mallory", fresh)) is None  # blocked: same throttle
    assert bound == [("alice", "wx_a")]
