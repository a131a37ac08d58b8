"""End to end: real ``lcbot run --transport console`` processes on the repository's files.

Each test copies the repository's ``lcbot.toml`` and ``plugins/sysmon.py`` into a temp
folder and runs ``python -m lcbot`` there. Every wait is bounded by a deadline.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import sqlite3
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.procs import REPO, WAIT, Bot, bots, lcbot_json, patched, run_console

STATUS_RE = re.compile(r"^up .+ \| load .+ \| mem .+ \| disk .+ \| interval (\d+)s$")
# help lines of the commands these tests use (built-in plugins may add more)
HELP = {
    "help": "help — list the commands you may run; help NAME for one",
    "interval": "interval:SECONDS — set the poll interval in seconds",
    "quit": "quit — stop the bot (asks to confirm)",
    "status": "status — uptime, load, memory, disk and the poll interval",
    "whoami": "whoami — your user name and privilege",
}
EXTRA_USERS = """
[[users]]
name = "bob"
pri = "admin"

[[users]]
name = "carol"
pri = "user"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A temp folder holding copies of the repo's lcbot.toml and plugins/sysmon.py."""
    folder = tmp_path / "bot"
    (folder / "plugins").mkdir(parents=True)
    shutil.copy(REPO / "lcbot.toml", folder / "lcbot.toml")
    shutil.copy(REPO / "plugins" / "sysmon.py", folder / "plugins" / "sysmon.py")
    return folder


@pytest.fixture
def team(project: Path) -> Path:
    """The project with bob (admin) and carol (user) added next to root ``me``."""
    config = project / "lcbot.toml"
    config.write_text(config.read_text() + EXTRA_USERS)
    return project


def command_table(project: Path) -> dict[str, dict]:
    """``lcbot commands list --json`` of ``project``, by command name."""
    return {c["name"]: c for c in lcbot_json(project, "commands", "list")}


def help_names(block: list[str]) -> list[str]:
    """The command names of a ``help`` answer (``commands:`` and one line per command)."""
    assert block[0] == "commands:", block
    return [re.match(r"[^\s:：]+", line)[0] for line in block[1:]]


@pytest.fixture
def start_bot() -> Iterator[Callable[..., Bot]]:
    """Start ``Bot``s; any still running at the end of the test is killed."""
    with bots() as start:
        yield start


# --- piped sessions -----------------------------------------------------------------------


def test_piped_session_answers_in_order(project):
    result = run_console(project, "help\nstatus\ninterval:30\nstatus\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    end = next(i for i, line in enumerate(lines) if STATUS_RE.match(line))
    help_block, rest = lines[:end], lines[end:]
    names = help_names(help_block)
    assert names == sorted(names)
    assert set(names) <= set(command_table(project))  # the root user sees every command
    assert set(HELP.values()) <= set(help_block)
    assert len(rest) == 3, lines
    first, changed, second = rest
    assert STATUS_RE.match(first) and STATUS_RE.match(first)[1] == "60", first
    assert changed == "interval set to 30s"
    assert STATUS_RE.match(second) and STATUS_RE.match(second)[1] == "30", second
    assert "Traceback" not in result.stderr


def test_admin_as_user(team):
    result = run_console(team, "whoami\ninterval:45\nstatus\n", "--as", "bob")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["bob (admin)", "interval set to 45s"]
    # the other user allowed to run it (root "me") is told; carol (user level) is not
    assert "→ me: bob set interval: 45" in lines
    assert not any("carol" in line for line in lines)
    status = [m[1] for m in map(STATUS_RE.match, lines) if m]
    assert status == ["45"]


def test_user_level_user_is_refused_a_set_command(team):
    result = run_console(team, "whoami\ninterval:5\nstatus\nhelp\n", "--as", "carol")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["carol (user)", "not allowed: interval"]
    assert STATUS_RE.match(lines[2]) and STATUS_RE.match(lines[2])[1] == "60", lines[2]
    # help lists only what carol may run
    table = command_table(team)
    names = help_names(lines[3:])
    assert {table[name]["pri"] for name in names} == {"user"}
    assert {HELP["help"], HELP["status"], HELP["whoami"]} <= set(lines[3:])
    assert "interval" not in names
    assert "quit" not in names
    assert "denied: user carol may not run interval" in result.stderr


def test_as_unknown_user_exits_2(team):
    result = run_console(team, "whoami\n", "--as", "nobody")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--as 'nobody': no such user" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_and_set_without_value(project):
    result = run_console(project, "xyz\ninterval\ninterval:\ninterval:abc\nXYZ  more words\n")
    assert result.returncode == 0, result.stderr
    usage = "usage: interval:SECONDS — set the poll interval in seconds"
    assert result.stdout.splitlines() == [
        "unknown command 'xyz' — send help",
        usage,
        usage,
        "interval failed: 'abc' is not a whole number of seconds",
        "unknown command 'xyz' — send help",
    ]


# --- quit and signals ---------------------------------------------------------------------------


def test_quit_yes_stops_before_end_of_input(project, start_bot):
    bot = start_bot(project)
    bot.send("whoami")
    bot.expect("me (root)")
    bot.send("quit")
    bot.expect("send yes within 60 s to stop the bot")
    bot.send("yes")
    bot.expect("stopping: pending messages are sent first")
    assert bot.wait() == 0  # stdin is still open: the quit stopped it
    assert bot.rest() == []
    assert "me confirmed quit: stopping" in bot.stderr


def test_quit_then_something_else_does_not_stop(project, start_bot):
    bot = start_bot(project)
    bot.send("quit")
    bot.expect("send yes within 60 s to stop the bot")
    bot.send("no")
    bot.expect("cancelled: quit (not confirmed)")  # any other answer cancels, and says so
    bot.send("yes")  # the question was answered: a late yes is just a word
    bot.expect("unknown command 'yes' — send help")
    bot.send("whoami")
    bot.expect("me (root)")
    assert bot.proc.poll() is None
    assert bot.proc.stdin is not None
    bot.proc.stdin.close()  # end of input stops it
    assert bot.wait() == 0
    assert bot.rest() == []
    assert "confirmed quit" not in bot.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly(project, start_bot, sig):
    bot = start_bot(project)
    bot.send("whoami")
    bot.expect("me (root)")  # running, signal handlers installed
    bot.proc.send_signal(sig)
    assert bot.wait() == 0
    assert "Traceback" not in bot.stderr
    assert "KeyboardInterrupt" not in bot.stderr


# --- durability ---------------------------------------------------------------------------------

# The drainer may join a recipient's pending messages into one send, so ``burst`` waits for
# each of its first LIMIT replies to be sent before it queues the next: exactly that many
# sends deliver one message each, then the remaining replies are queued at once and the
# next send never ends. The blocking send is fault injection from outside lcbot (the
# child's sitecustomize); the folder plugin only waits for it.
BLOCK_SENDS = """\
import asyncio
import threading

from lcbot.transports.console import ConsoleTransport

LIMIT = 3
sent = threading.Condition()
count = [0]
original = ConsoleTransport.send


async def send(self, address, text):
    if count[0] >= LIMIT:
        await asyncio.Event().wait()  # this send (and every later one) never ends
    await original(self, address, text)
    with sent:
        count[0] += 1
        sent.notify_all()


ConsoleTransport.send = send
"""

BURST = """\
from lcbot import hookimpl


@hookimpl
def register_commands(registry):
    @registry.command("burst", help="ten replies")
    def burst(ctx):
        import sitecustomize as blocked  # BLOCK_SENDS, in run 1 only

        for i in range(10):
            ctx.reply(f"msg {i}")
            if i < blocked.LIMIT:
                with blocked.sent:
                    if not blocked.sent.wait_for(lambda: blocked.count[0] > i, timeout=20):
                        raise RuntimeError(f"msg {i} was not sent")
"""

MSG_RE = re.compile(r"^msg (\d)$")


def outbox_rows(db_path: Path) -> list[tuple[int, str, str, str]]:
    with contextlib.closing(sqlite3.connect(db_path, timeout=5)) as db:
        return db.execute("SELECT id, recipient, text, state FROM outbox ORDER BY id").fetchall()


def test_outbox_survives_sigkill(project, start_bot, tmp_path):
    (project / "plugins" / "burst.py").write_text(BURST)
    db_path = project / ".lcbot" / "lcbot.db"

    # Run 1: three messages go out, the fourth send hangs; then the process is killed.
    bot = start_bot(project, **patched(tmp_path / "blocked", BLOCK_SENDS))
    bot.send("burst")
    for i in range(3):
        bot.expect(f"msg {i}")
    deadline = time.monotonic() + WAIT
    while len(outbox_rows(db_path)) < 10:
        assert time.monotonic() < deadline, f"outbox holds {outbox_rows(db_path)}"
        time.sleep(0.02)
    bot.proc.kill()
    assert bot.wait() == -signal.SIGKILL
    run1 = [int(m[1]) for m in map(MSG_RE.match, bot.seen + bot.rest()) if m]
    assert run1 == [0, 1, 2]
    rows = outbox_rows(db_path)
    assert [(r[1], r[2]) for r in rows] == [("me", f"msg {i}") for i in range(10)]
    assert {r[3] for r in rows[3:]} == {"pending"}

    # Run 2: no input at all; the pending rows are sent before it exits.
    result = run_console(project, "")
    assert result.returncode == 0, result.stderr
    run2 = [int(m[1]) for m in map(MSG_RE.match, result.stdout.splitlines()) if m]
    assert run2 and run2 == list(range(run2[0], 10)), f"order or gaps: {run2}"
    assert set(run1) | set(run2) == set(range(10))
    # at-least-once with few duplicates: a crash repeats at most one (coalesced) send per
    # recipient; every run-1 message was a send of its own
    assert len(set(run1) & set(run2)) <= 1, f"run 2 repeated {sorted(set(run1) & set(run2))}"
    pending = re.search(r"(\d+) message\(s\) pending from an earlier run", result.stderr)
    assert pending and int(pending[1]) == len(run2), result.stderr

    rows = outbox_rows(db_path)
    assert [(r[1], r[2], r[3]) for r in rows] == [("me", f"msg {i}", "sent") for i in range(10)]
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone() == (0,)


def test_handler_raising_system_exit_does_not_stop_the_bot(project):
    (project / "plugins" / "exiter.py").write_text(
        textwrap.dedent(
            """
            import sys

            from lcbot import hookimpl


            @hookimpl
            def register_commands(registry):
                @registry.command("die")
                def die(ctx):
                    sys.exit(4)
            """
        )
    )
    result = run_console(project, "whoami\ndie\nwhoami\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["me (root)", "die failed: 4", "me (root)"]
    assert "command die from me failed" in result.stderr
