"""End to end: files through real ``lcbot run --transport console`` processes — printed with
a lasting path, removed from the outbox's store once sent, delivered after a kill -9."""

from __future__ import annotations

import re
import signal
import stat
from pathlib import Path

from tests.procs import bots, lcbot, make_project, query, run_console, wait_until

PLUGIN = """
from pathlib import Path

from lcbot import hookimpl

HERE = Path(__file__).parent


@hookimpl
def register_commands(registry):
    @registry.command("report")
    def report(ctx):
        ctx.reply("first")
        ctx.reply_file(HERE / "report.txt")

    @registry.command("big")
    def big(ctx):
        ctx.reply_file(b"x" * 2000, name="big.iso")

    @registry.command("weird")
    def weird(ctx):
        ctx.reply_file(b"w", name="../../etc/\\x1b[31mevil\\n.sh")
"""
REPORT = b"disk: 42%\n" * 10
FILE_LINE = re.compile(r"^\[file for me\] (.+) \((\d+) bytes\): (.+)$")


def project_with(folder: Path, extra: str = "") -> Path:
    project = make_project(
        folder, {"me": "root"}, extra="[files]\nmax_size = 1000\n" + extra, plugins={"rep": PLUGIN}
    )
    (project / "plugins" / "report.txt").write_bytes(REPORT)
    return project


def files_in(project: Path) -> list[Path]:
    folder = project / ".lcbot" / "files"
    return sorted(folder.iterdir()) if folder.exists() else []


def printed_files(lines: list[str]) -> list[tuple[str, int, Path]]:
    return [(m[1], int(m[2]), Path(m[3])) for m in map(FILE_LINE.match, lines) if m]


def test_the_console_prints_a_lasting_copy_and_the_outbox_keeps_nothing(tmp_path):
    project = project_with(tmp_path / "bot")
    ran = run_console(project, "report\nbig\nweird\n")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    (report, weird) = printed_files(lines)
    assert lines[0] == "first"
    assert report[:2] == ("report.txt", len(REPORT))
    assert report[2].read_bytes() == REPORT
    assert report[2].parent == project / ".lcbot" / "received"
    assert stat.S_IMODE(report[2].stat().st_mode) == 0o600
    assert (
        "big failed: file big.iso is 2,000 bytes; the limit is 1,000 bytes ([files] max_size)"
        in (lines)
    )
    assert weird[:2] == ("[31mevil.sh", 1)  # folders and control characters gone
    assert files_in(project) == []  # removed once sent
    assert "Traceback" not in ran.stderr
    listed = lcbot(project, "outbox", "list", COLUMNS="200")
    assert "[file] report.txt (100 bytes)" in listed.stdout


def test_a_file_waiting_at_kill_9_is_delivered_after_the_restart(tmp_path):
    # the gap holds the file back after "first": it waits on disk while the bot is killed
    project = project_with(tmp_path / "bot", "[ratelimit]\nper_recipient_gap = 60\n")
    with bots() as start:
        bot = start(project)
        bot.send("report")
        bot.expect("first")
        wait_until(
            lambda: query(project, "SELECT state FROM outbox WHERE file IS NULL") == [("sent",)],
            "the text's sent mark stored",
        )
        wait_until(  # the file is copied (and synced) after "first" went: its row follows
            lambda: query(project, "SELECT 1 FROM outbox WHERE file IS NOT NULL"),
            "the file's row stored",
        )
        rows = query(
            project, "SELECT text, state, file, file_size FROM outbox WHERE file IS NOT NULL"
        )
        assert [r[:2] for r in rows] == [("report.txt", "pending")]
        (waiting,) = files_in(project)
        assert waiting.name == rows[0][2] and waiting.read_bytes() == REPORT
        assert stat.S_IMODE(waiting.stat().st_mode) == 0o600
        bot.proc.send_signal(signal.SIGKILL)
        assert bot.wait() == -signal.SIGKILL
    (project / "plugins" / "report.txt").write_bytes(b"changed later")  # copied at the call
    with bots() as start:
        bot = start(project)
        line = bot.expect(lambda line: FILE_LINE.match(line) is not None)
        bot.end_input()
        assert bot.wait() == 0, bot.stderr
        ((name, size, path),) = printed_files([line])
        assert (name, size, path.read_bytes()) == ("report.txt", len(REPORT), REPORT)
    assert files_in(project) == []
    assert query(project, "SELECT state FROM outbox") == [("sent",), ("sent",)]
