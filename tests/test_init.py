"""``lcbot init`` gives a working start: a real subprocess in an empty folder, then
``lcbot run`` there answers ``status`` from the example plugin it wrote."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.procs import REPO, lcbot, run_console

STATUS_RE = re.compile(r"^up \d+d \d+h \d+m \| load .* \| interval (\d+)s$")


def test_init_then_run_answers_status(tmp_path: Path):
    done = lcbot(tmp_path, "init", "--root", "me")
    assert done.returncode == 0, done.stderr
    plugin = tmp_path / "plugins" / "sysmon.py"
    assert f"wrote {plugin}" in done.stdout and "type help or status" in done.stdout
    assert plugin.read_bytes() == (REPO / "lcbot" / "examples" / "sysmon.py").read_bytes()
    assert (REPO / "plugins" / "sysmon.py").read_bytes() == plugin.read_bytes()  # the link
    ran = run_console(tmp_path, "status\ninterval:30\nstatus\n")
    assert ran.returncode == 0, ran.stderr
    first, changed, second = ran.stdout.splitlines()
    assert STATUS_RE.match(first)[1] == "60" and STATUS_RE.match(second)[1] == "30", ran.stdout
    assert changed == "interval set to 30s"
    help_lines = run_console(tmp_path, "help\n").stdout.splitlines()
    assert "status — uptime, load, memory, disk and the poll interval" in help_lines


def test_init_keeps_an_existing_plugin_and_no_example_writes_none(tmp_path: Path):
    mine = tmp_path / "mine"
    (mine / "plugins").mkdir(parents=True)
    (mine / "plugins" / "sysmon.py").write_text("# my own\n")
    done = lcbot(mine, "init", "--root", "me")
    assert done.returncode == 0, done.stderr
    assert "kept" in done.stdout and (mine / "plugins" / "sysmon.py").read_text() == "# my own\n"

    bare = tmp_path / "bare"
    bare.mkdir()
    done = lcbot(bare, "init", "--root", "me", "--no-example")
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(bare)) == ["lcbot.toml", "lcbot.toml.lock"]
    helped = run_console(bare, "help\n")
    assert helped.returncode == 0 and "status" not in helped.stdout


def test_init_that_cannot_write_the_plugin_changes_nothing(tmp_path: Path):
    (tmp_path / "plugins").write_text("not a folder\n")
    done = lcbot(tmp_path, "init", "--root", "me")
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot write {tmp_path / 'plugins' / 'sysmon.py'}" in lines[0]
    assert "nothing was changed" in lines[0] and "--no-example" in lines[0]
    assert not (tmp_path / "lcbot.toml").exists()
    assert (tmp_path / "plugins").read_text() == "not a folder\n"
