"""lcbot.toml edge cases, with real processes: a folder lcbot may not write in (one clear
line, nothing changed), a UTF-8 byte order mark, and the commands that work without any
configuration file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.procs import child_env, db_path, lcbot, make_project, one_line

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

BOM = b"\xef\xbb\xbf"


def users_in(path: Path) -> list[str]:
    return [u["name"] for u in tomllib.loads(path.read_text(encoding="utf-8-sig"))["users"]]


# --- a folder lcbot may not write in ------------------------------------------------------
#
# Root ignores permission bits: as root the command runs without the capabilities that
# override them (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so the kernel
# refuses writes into a folder of mode 0555 as it does for any user. Still root, it can
# read a private virtual environment or checkout, which the user nobody could not.
DROP_DAC = "-dac_override,-dac_read_search"


@pytest.fixture
def readonly():
    """``(make(with_data_dir, with_lock) -> project, run(project, *args) -> result)``."""
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    base = Path(tempfile.mkdtemp(prefix="lcbot-readonly-"))
    base.chmod(0o755)
    projects: list[Path] = []

    def make(data_dir: bool = True, lock: bool = False, config: bool = True) -> Path:
        project = base / f"p{len(projects)}"
        if config:
            make_project(project)
        else:
            project.mkdir()
        if data_dir:  # writable by whoever runs lcbot: only the config folder is read-only
            (project / ".lcbot").mkdir(mode=0o700)
        if lock:  # an earlier edit by the folder's owner left it
            (project / "lcbot.toml.lock").touch(mode=0o666)
        for path in project.rglob("*"):
            path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.is_dir() else 0))
        project.chmod(0o555)
        projects.append(project)
        return project

    def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
        prefix = []
        if os.geteuid() == 0:
            prefix = ["setpriv", f"--bounding-set={DROP_DAC}", f"--inh-caps={DROP_DAC}"]
        return subprocess.run(
            [*prefix, sys.executable, "-m", "lcbot", *args],
            cwd=project,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    try:
        yield make, run
    finally:
        for project in projects:
            project.chmod(0o755)
        shutil.rmtree(base)


EDITS = [
    ("user", "remove", "carol"),
    ("user", "set-pri", "carol", "admin"),
    ("user", "add", "dave", "--pri", "user"),
]


@pytest.mark.parametrize("lock", [False, True], ids=["no-lock-file", "lock-file-exists"])
@pytest.mark.parametrize("args", EDITS, ids=lambda a: a[1])
def test_an_edit_in_a_read_only_folder(readonly, args, lock):
    make, run = readonly
    project = make(lock=lock)
    toml = project / "lcbot.toml"
    before = toml.read_bytes()
    done = run(project, *args)
    assert done.returncode == 2, done
    line = one_line(done.stderr)
    assert f"cannot write {toml}: Permission denied" in line
    assert f"write access to the folder {project}" in line
    assert "nothing was changed" in line
    assert toml.read_bytes() == before
    assert sorted(os.listdir(project)) == sorted(
        [".lcbot", "lcbot.toml", "plugins", *(["lcbot.toml.lock"] if lock else [])]
    )
    if db_path(project).exists():  # no pairing code for a user who was not added
        with contextlib.closing(sqlite3.connect(db_path(project))) as db:
            assert db.execute("SELECT count(*) FROM pairing").fetchone() == (0,)


def test_init_in_a_read_only_folder(readonly):
    make, run = readonly
    project = make(data_dir=False, config=False)
    done = run(project, "init", "--root", "me")
    assert done.returncode == 2, done
    line = one_line(done.stderr)
    assert f"cannot write {project / 'lcbot.toml'}: Permission denied" in line
    assert os.listdir(project) == []


@pytest.mark.parametrize("args", [("run", "--transport", "console"), ("alert", "x")])
def test_a_data_dir_in_a_read_only_folder(readonly, args):
    make, run = readonly
    project = make(data_dir=False)
    done = run(project, *args)
    assert done.returncode == 2, done
    line = one_line(done.stderr)
    assert f"{project / '.lcbot'}" in line and "[bot] data_dir" in line
    assert "Permission denied" in line
    assert not (project / ".lcbot").exists()


# --- a UTF-8 byte order mark --------------------------------------------------------------


def test_a_byte_order_mark_is_accepted_and_dropped_by_an_edit(tmp_path):
    project = make_project(tmp_path / "p")
    toml = project / "lcbot.toml"
    toml.write_bytes(BOM + toml.read_bytes())
    listed = lcbot(project, "user", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [u["name"] for u in json.loads(listed.stdout)] == ["me", "bob", "carol"]
    assert lcbot(project, "config", "check").returncode == 0

    added = lcbot(project, "user", "add", "dave", "--pri", "user", "--wxid", "wxid_dave")
    assert added.returncode == 0, added.stderr
    assert not toml.read_bytes().startswith(BOM)
    assert users_in(toml) == ["me", "bob", "carol", "dave"]


def test_errors_after_a_byte_order_mark_keep_their_position(tmp_path):
    project = make_project(tmp_path / "p")
    toml = project / "lcbot.toml"
    toml.write_bytes(BOM + b"[bot]\nname = \n")
    bad = lcbot(project, "user", "list")
    assert bad.returncode == 2
    assert one_line(bad.stderr).startswith(f"error: {toml}:2:8: invalid TOML")
    toml.write_bytes(BOM + b'[bot]\nname = "\xff"\n')
    bad = lcbot(project, "user", "list")
    assert bad.returncode == 2
    assert one_line(bad.stderr) == f"error: {toml}: not UTF-8 text (byte 17)"


# --- commands that need no configuration --------------------------------------------------


@pytest.mark.parametrize("group", ["plugins", "commands"])
def test_listing_works_without_a_configuration(tmp_path, group):
    ran = lcbot(tmp_path, group, "list", "--json")
    assert ran.returncode == 0, ran.stderr
    records = json.loads(ran.stdout)
    if group == "plugins":
        assert {"basics", "alerting"} <= {r["name"] for r in records}
    else:
        assert {"help", "whoami", "quit"} <= {r["name"] for r in records}
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and "no configuration file" in lines[0], ran.stderr
    assert str(tmp_path / "lcbot.toml") in lines[0]
    table = lcbot(tmp_path, group, "list")
    assert table.returncode == 0, table.stderr
    assert "basics" in table.stdout
    assert os.listdir(tmp_path) == []  # nothing was created


@pytest.mark.parametrize("group", ["plugins", "commands"])
def test_a_named_configuration_must_exist(tmp_path, group):
    missing = tmp_path / "missing.toml"
    for ran in (
        lcbot(tmp_path, group, "list", "--config", str(missing)),
        lcbot(tmp_path, group, "list", LCBOT_CONFIG=str(missing)),
    ):
        assert ran.returncode == 2
        assert one_line(ran.stderr).startswith(f"error: no configuration file at {missing}")
        assert ran.stdout == ""
