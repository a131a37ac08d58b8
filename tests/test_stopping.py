"""Stopping and handlers: a hanging handler holds up neither other commands nor the exit;
every way a handler can end is a ``NAME failed: …`` reply; a blocked loop is noticed;
durations are bounded."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sqlite3
import time

import pytest

from lcbot.testing import Harness
from tests.procs import WAIT, bots, db_path, make_project, query, run_console, wait_until

HANGING = """\
import asyncio
import threading

from lcbot import hookimpl


@hookimpl
def register_commands(registry):
    @registry.command("hang")
    def hang(ctx):  # a plain def that never returns
        threading.Event().wait()

    @registry.command("ahang")
    async def ahang(ctx):  # an async def that never returns
        await asyncio.Event().wait()
"""

ODD_ENDINGS = """\
import asyncio
import time

from lcbot import hookimpl


@hookimpl
def register_commands(registry):
    @registry.command("interrupt")
    def interrupt(ctx):
        raise KeyboardInterrupt

    @registry.command("cancel")
    async def cancel(ctx):
        raise asyncio.CancelledError

    @registry.command("genexit")
    async def genexit(ctx):
        raise GeneratorExit

    @registry.command("block")
    async def block(ctx):
        time.sleep(2.5)  # blocks the event loop
        return "unblocked"
"""


def project_with(folder, users, bot: str, extra: str = "", plugins=None):
    """A project whose [bot] section also holds ``bot`` (TOML lines)."""
    project = make_project(folder, users, extra, plugins)
    toml = project / "lcbot.toml"
    toml.write_text(toml.read_text().replace("[bot]\n", f"[bot]\n{bot}", 1))
    return project


@pytest.mark.parametrize("command", ["hang", "ahang"])
def test_a_hanging_handler_holds_up_neither_others_nor_the_exit(tmp_path, command):
    project = project_with(
        tmp_path / "bot", {"me": "root"}, "stop_timeout = 2\n", plugins={"hanging": HANGING}
    )
    started = time.monotonic()
    result = run_console(project, f"{command}\nwhoami\n")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["me (root)"]
    assert took < 10, took  # the stop waited its 2 s, not for ever
    assert f"stopping while commands still run (their answers are lost): {command} (from me" in (
        result.stderr
    )


def test_sigterm_with_a_backlog_stops_within_stop_timeout(tmp_path):
    project = project_with(
        tmp_path / "bot",
        {"me": "root", "bob": "admin"},
        "stop_timeout = 2\n",
        "[ratelimit]\nper_second = 1\nmax_chars = 20\n",
    )
    with bots() as start:
        bot = start(project)
        bot.send("whoami")
        bot.expect("me (root)")
        for i in range(60):  # far more than 2 s of sends at 1/s: most stay pending
            bot.send(f"whoami {i}")
        time.sleep(0.5)
        begun = time.monotonic()
        bot.proc.send_signal(signal.SIGTERM)
        assert bot.wait(WAIT) == 0
        assert time.monotonic() - begun < 6
        assert_pending_reported(project, bot.stderr)


def assert_pending_reported(project, stderr: str) -> None:
    """The stop names how many messages wait for the next start: as many as the db holds."""
    found = re.search(r"(\d+) message\(s\) still pending; they are sent at the next start", stderr)
    assert found, stderr
    pending = query(project, "SELECT count(*) FROM outbox WHERE state = 'pending'")[0][0]
    assert int(found[1]) == pending > 0, (found[0], pending)


def test_sigterm_with_a_backlog_beyond_the_window_reports_all_of_it(tmp_path):
    """300 rows from an earlier run: more than the drainer holds in memory (200)."""
    project = project_with(
        tmp_path / "bot", {"me": "root"}, "stop_timeout = 1\n", "[ratelimit]\nper_second = 1\n"
    )
    assert run_console(project).returncode == 0  # the database, with lcbot's schema
    with contextlib.closing(sqlite3.connect(db_path(project))) as db, db:
        db.executemany(
            "INSERT INTO outbox (recipient, text, kind, created, priority) "
            "VALUES ('me', ?, 'reply', ?, 0)",
            [(f"row {i} " + "x" * 1990, time.time()) for i in range(300)],  # one send each
        )
    with bots() as start:
        bot = start(project)
        wait_until(lambda: "pending from an earlier run" in bot.stderr, "the bot started")
        bot.proc.send_signal(signal.SIGTERM)
        assert bot.wait(WAIT) == 0
        assert_pending_reported(project, bot.stderr)


def test_odd_endings_are_failures_and_the_bot_goes_on(tmp_path):
    project = project_with(
        tmp_path / "bot", {"me": "root"}, "slow_notice = 1\n", plugins={"odd": ODD_ENDINGS}
    )
    result = run_console(project, "interrupt\nwhoami\ncancel\nwhoami\ngenexit\nwhoami\nblock\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("interrupt failed: ")
    assert lines[2].startswith("cancel failed: ")
    assert lines[4].startswith("genexit failed: ")
    assert lines[1] == lines[3] == lines[5] == "me (root)"
    assert lines[6:] == ["block: still running…", "unblocked"]  # the notice despite the block
    err = result.stderr
    assert err.count("Traceback") >= 3  # each failure is logged with its traceback
    assert "Task exception was never retrieved" not in err
    assert "the event loop is blocked" in err and "the async handler block (from me)" in err


def test_durations_are_bounded_and_nothing_is_stored_on_error(tmp_path):
    async def go():
        async with Harness(tmp_path, users={"alice": "root", "bob": "user"}) as bot:
            (reply,) = await bot.send("bob", "mute 99999999999999999999d")
            assert reply == "mute failed: a duration must be at most 366d"
            (reply,) = await bot.send("bob", "mute 400d")
            assert reply == "mute failed: a duration must be at most 366d"
            await bot.alert("still reaches bob", level="critical")
            assert "CRITICAL still reaches bob" in bot.lines("bob")
            assert bot.app.router.mutes == {}

    asyncio.run(go())
