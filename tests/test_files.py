"""Files and images through the durable outbox (in-process, real SQLite and file store)."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import time

import pytest

from lcbot import CmdType, FileTooLarge, hookimpl
from lcbot.db import Database, connect
from lcbot.db.migrations import MIGRATIONS
from lcbot.files import MAX_NAME, FileStore, clean_name
from lcbot.testing import Harness
from lcbot.transports.base import Transport
from lcbot.transports.memory import MemoryTransport

TEAM = {"alice": "root", "bob": "admin"}


def run(coro):
    return asyncio.run(coro)


def stored(folder) -> list:
    files = folder / "data" / "files"
    return sorted(files.iterdir()) if files.exists() else []


class Reports:
    """`report` replies with a file at a path; `blob` with bytes; `big` exceeds the limit."""

    __name__ = "reports"

    def __init__(self, path=None) -> None:
        self.path = path

    @hookimpl
    def register_commands(self, registry):
        @registry.command("report")
        def report(ctx):
            ctx.reply_file(self.path)
            return "report sent"

        @registry.command("blob", kind=CmdType.GET)
        async def blob(ctx):
            ctx.reply_file(b"\x00\x01binary", name=ctx.extra)

        @registry.command("big")
        def big(ctx):
            ctx.reply_file(b"x" * 5000, name="big.iso")


# --- names ---------------------------------------------------------------------------------


def test_names_are_cleaned():
    assert clean_name("../../etc/pass\x00wd") == "passwd"
    assert clean_name("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert clean_name("a\nb\tc\u202e.txt") == "abc.txt"  # controls and bidi overrides
    assert clean_name("...hidden") == "hidden"
    assert clean_name("") == clean_name(None) == "file.bin"
    assert clean_name("/", default="x.dat") == "x.dat"
    long = clean_name("n" * 500 + ".tar.gz")
    assert len(long) == MAX_NAME and long.endswith(".gz")
    assert len(clean_name("m" * 500)) == MAX_NAME


# --- the store -----------------------------------------------------------------------------


def test_the_store_copies_at_call_time_private_and_durable(tmp_path):
    source = tmp_path / "report.txt"
    source.write_text("version 1")
    store = FileStore(tmp_path / "data", max_size=100)
    saved = store.save(source)
    source.write_text("version 2, changed after the call")
    assert saved.name == "report.txt" and saved.size == 9
    path = store.path(saved.key)
    assert path.read_text() == "version 1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
    assert [p.name for p in store.folder.iterdir()] == [saved.key]  # no .part left
    with pytest.raises(FileTooLarge, match=r"the limit is 100 bytes \(\[files\] max_size\)"):
        store.save(b"y" * 101, "y.bin")
    with pytest.raises(FileNotFoundError):
        store.save(tmp_path / "missing.txt")
    assert [p.name for p in store.folder.iterdir()] == [saved.key]
    assert store.sweep({saved.key}) == 0 and store.sweep(set()) == 1


# --- through a running bot -----------------------------------------------------------------


def test_a_handler_replies_with_a_file(tmp_path):
    source = tmp_path / "disk report.txt"
    source.write_bytes(b"disk: 42%\n")

    async def go():
        async with Harness(tmp_path / "bot", [Reports(source)], TEAM) as bot:
            assert await bot.send("alice", "report") == ["disk report.txt", "report sent"]
            assert bot.files_to("alice") == [("disk report.txt", b"disk: 42%\n")]
            assert bot.to("alice") == ["report sent"]  # the file is not coalesced with text
            assert stored(tmp_path / "bot") == []  # removed once sent
            await bot.send("bob", "blob ../../../etc/shadow\x07")
            await bot.send("bob", "blob")
            blob = b"\x00\x01binary"
            assert bot.files_to("bob") == [("shadow", blob), ("file.bin", blob)]

    run(go())


def test_bot_send_file_is_on_disk_before_sending_and_gone_after(tmp_path):
    async def go():
        async with Harness(tmp_path, users=TEAM) as bot:
            plugin = bot.app.bot("p")
            bot.transport.set_ready(False)  # nothing leaves yet
            plugin.send_file("bob", b"chart", name="chart.png")
            (path,) = stored(tmp_path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes() == b"chart"
            with pytest.raises(ValueError, match="no user named 'eve'"):
                plugin.send_file("eve", b"x")
            bot.transport.set_ready(True)
            await bot.settle()
            assert bot.files_to("bob") == [("chart.png", b"chart")]
            assert stored(tmp_path) == []
            rows = bot.app.db.conn.execute("SELECT text, state, file_size FROM outbox").fetchall()
            assert rows == [("chart.png", "sent", 5)]

    run(go())


def test_a_too_large_file_is_a_clear_reply_and_the_bot_goes_on(tmp_path):
    config = {"files": {"max_size": 4096}}

    async def go():
        async with Harness(tmp_path, [Reports()], TEAM, config) as bot:
            (reply,) = await bot.send("alice", "big")
            assert reply == (
                "big failed: file big.iso is 5,000 bytes; the limit is 4 KiB ([files] max_size)"
            )
            assert stored(tmp_path) == []
            with pytest.raises(ValueError, match="limit is 4 KiB"):  # FileTooLarge for plugins
                bot.app.bot("p").send_file("alice", b"z" * 4097)
            assert await bot.send("alice", "blob ok.bin") == ["ok.bin"]
            assert bot.files_to("alice") == [("ok.bin", b"\x00\x01binary")]

    run(go())


class Ordered(MemoryTransport):
    """Records texts and files in one list, in the order they went out."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.file_failures = 0

    async def send(self, address, text):
        await super().send(address, text)
        self.order.append(text)

    async def send_file(self, address, path, name):
        if self.file_failures:
            self.file_failures -= 1
            raise ConnectionError("the file did not go")
        await super().send_file(address, path, name)
        self.order.append(f"<{name}>")


def test_files_keep_their_place_and_are_retried_like_text(tmp_path):
    async def go():
        transport = Ordered()
        async with Harness(tmp_path, users=TEAM, transport=transport) as bot:
            plugin = bot.app.bot("p")
            transport.set_ready(False)
            plugin.send("bob", "before 1")
            plugin.send("bob", "before 2")
            plugin.send_file("bob", b"data", name="a.csv")
            plugin.send("bob", "after")
            await asyncio.sleep(0.05)  # stored
            transport.fail_next = transport.file_failures = 1  # the text, the file: once each
            transport.set_ready(True)
            await bot.settle()
            assert transport.order == ["before 1\nbefore 2", "<a.csv>", "after"]
            rows = bot.app.db.conn.execute("SELECT state, attempts FROM outbox").fetchall()
            assert rows == [("sent", 1)] * 3 + [("sent", 0)]
            assert stored(tmp_path) == []

    run(go())


class NoFiles(MemoryTransport):
    name = "nofiles"
    send_file = Transport.send_file  # the base: NotImplementedError


def test_a_transport_without_files_makes_the_row_dead_at_once(tmp_path):
    async def go():
        transport = NoFiles()
        async with Harness(tmp_path, users=TEAM, transport=transport) as bot:
            bot.app.bot("p").send_file("bob", b"data", name="a.csv")
            bot.app.bot("p").send("bob", "and text")
            await bot.settle()
            assert bot.to("bob") == ["and text"]  # the next one went on
            (row,) = bot.app.db.conn.execute(
                "SELECT state, attempts, last_error FROM outbox WHERE file IS NOT NULL"
            ).fetchall()
            assert row == ("dead", 1, "Undeliverable: the nofiles transport cannot send files")
            assert len(stored(tmp_path)) == 1  # kept while dead: `lcbot outbox retry` may resend
            gone, _ = bot.app.outbox.expire(time.time() + 1, 100)  # retention deletes the row
            assert gone == 2 and stored(tmp_path) == []

    run(go())


def test_a_pending_file_survives_a_restart_and_orphans_are_swept(tmp_path):
    async def go():
        bot = await Harness(tmp_path, users=TEAM).start()
        bot.transport.set_ready(False)
        bot.app.bot("p").send_file("alice", b"kept", name="kept.txt")
        await bot.stop(timeout=0.2)  # cannot send: it stays pending
        (kept,) = stored(tmp_path)
        orphan = kept.parent / "0123abcd"  # a file a crash left before its row was stored
        orphan.write_bytes(b"lost")
        again = await Harness(tmp_path, users=TEAM).start()
        try:
            assert not orphan.exists() and kept.exists()  # swept at start, before sending
            await again.settle()
            assert again.files_to("alice") == [("kept.txt", b"kept")]
            assert stored(tmp_path) == []
        finally:
            await again.stop()

    run(go())


def test_a_version_5_database_is_migrated(tmp_path):
    path = tmp_path / "lcbot.db"
    with sqlite3.connect(path, isolation_level=None) as old:
        for number, script in enumerate(MIGRATIONS[:5], 1):
            for statement in filter(str.strip, script.split(";")):
                old.execute(statement)
            old.execute(f"PRAGMA user_version = {number}")
        old.execute("INSERT INTO outbox (recipient, text, created) VALUES ('a', 'old', 1)")
    old.close()
    db = connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert db.execute("SELECT text, file, file_size FROM outbox").fetchall() == [
        ("old", None, None)
    ]
    db.close()
    Database(path).open()  # and the bot opens it
