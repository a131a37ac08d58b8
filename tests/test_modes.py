"""Files holding messages are private whatever the umask: the data dir 0700, the database,
its ``-wal`` / ``-shm`` files and ``lcbot.lock`` 0600, for a new data dir and an existing
one; lcbot.toml is created 0600 and keeps its mode when rewritten. Real processes, started
under the umask being tested (they inherit it)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.procs import bots, db_path, lcbot, make_project, run_console


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request):
    """The umask of this process, hence of every lcbot it starts (restored after)."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_a_new_project_is_private(tmp_path, umask):
    project = tmp_path / "p"
    project.mkdir()
    assert lcbot(project, "init", "--root", "me").returncode == 0
    toml = project / "lcbot.toml"
    assert mode(toml) == 0o600
    added = lcbot(project, "user", "add", "bob", "--pri", "user")  # pairing code: the database
    assert added.returncode == 0, added.stderr
    data = project / ".lcbot"
    assert mode(data) == 0o700
    assert mode(data / "lcbot.db") == 0o600
    assert mode(toml) == 0o600  # the rewrite kept it

    with bots() as start:  # a running bot: its lock and the database's sidecar files
        bot = start(project)
        bot.send("whoami")
        bot.expect("me (root)")
        for name in ("lcbot.lock", "lcbot.db", "lcbot.db-wal", "lcbot.db-shm"):
            assert mode(data / name) == 0o600, name
        bot.end_input()
        assert bot.wait() == 0, bot.stderr
    assert mode(data) == 0o700

    toml.chmod(0o640)  # the owner's choice survives every rewrite
    changed = lcbot(project, "user", "set-pri", "bob", "admin")
    assert changed.returncode == 0, changed.stderr
    assert mode(toml) == 0o640


def test_existing_loose_files_are_tightened(tmp_path):
    project = make_project(tmp_path / "p")
    data = project / ".lcbot"
    data.mkdir()
    with contextlib.closing(sqlite3.connect(db_path(project))) as other:
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
        other.execute("INSERT INTO scratch VALUES (1)")
        other.commit()  # the connection stays open: -wal and -shm stay
        (data / "lcbot.lock").touch()
        loose = {"lcbot.db": 0o644, "lcbot.db-wal": 0o644, "lcbot.db-shm": 0o666}
        for name, loose_mode in {**loose, "lcbot.lock": 0o666}.items():
            os.chmod(data / name, loose_mode)
        data.chmod(0o755)

        ran = lcbot(project, "alert", "disk full")  # a CLI command opening the database
        assert ran.returncode == 0, ran.stderr
        assert mode(data) == 0o700
        for name in loose:
            assert mode(data / name) == 0o600, name
    ran = run_console(project)  # the bot tightens its lock file
    assert ran.returncode == 0, ran.stderr
    assert mode(data / "lcbot.lock") == 0o600


def test_a_data_dir_holding_other_files_keeps_its_mode(tmp_path):
    """``data_dir = "."``: lcbot's files are private, the project folder is not chmodded."""
    project = make_project(tmp_path / "p", extra="")
    toml = project / "lcbot.toml"
    toml.write_text(toml.read_text().replace('data_dir = ".lcbot"', 'data_dir = "."'))
    project.chmod(0o755)
    ran = lcbot(project, "alert", "disk full")
    assert ran.returncode == 0, ran.stderr
    assert mode(project / "lcbot.db") == 0o600
    assert mode(project) == 0o755
    ran = run_console(project)
    assert ran.returncode == 0, ran.stderr
    assert mode(project / "lcbot.lock") == 0o600
    assert mode(project) == 0o755
    assert f"chmod 700 {project}" in ran.stderr  # the bot says so in its log
