"""A damaged database, and a data dir that cannot be created: every command that opens the
database stops with one clear line (no traceback) and writes nothing; the README's
recovery steps give a database lcbot works with again. Real processes."""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from lcbot.alerts import make_alert
from lcbot.db import connect, transaction
from lcbot.db.alerts import insert_new
from tests.procs import REPO, db_path, lcbot, make_project, one_line, patched, query, run_console

ROWS = 3000


def quick_check(path: Path) -> str:
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return " ".join(str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall())
    except sqlite3.DatabaseError as exc:
        return str(exc)


def filled(folder: Path) -> Path:
    """A project whose database holds real rows: an alert and a pairing code from the CLI,
    ROWS alerts stored through lcbot's database layer, then routed by a bot run (alert
    outcomes, replies and alert messages in the outbox)."""
    project = make_project(folder)
    assert lcbot(project, "alert", "first alert", "--key", "disk:/").returncode == 0
    assert lcbot(project, "user", "invite", "carol").returncode == 0
    db = connect(db_path(project))
    try:
        with transaction(db):
            insert_new(
                db, [make_alert(f"alert {i}: " + "disk /var is full " * 10) for i in range(ROWS)]
            )
    finally:
        db.close()
    ran = run_console(project, "whoami\nhelp\n")
    assert ran.returncode == 0, ran.stderr
    assert query(project, "SELECT count(*) FROM outbox")[0][0] >= 2
    return project  # no process has the file open: its WAL is checkpointed into it


def free_pages(data: bytes, page_size: int) -> set[int]:
    """The page numbers on the file's freelist (trunk pages and their leaves)."""
    free, trunk = set(), int.from_bytes(data[32:36], "big")
    while trunk:
        page = data[(trunk - 1) * page_size : trunk * page_size]
        count = int.from_bytes(page[4:8], "big")
        free |= {
            trunk,
            *(int.from_bytes(page[8 + 4 * i : 12 + 4 * i], "big") for i in range(count)),
        }
        trunk = int.from_bytes(page[:4], "big")
    return free


@pytest.fixture(scope="module")
def damaged_template(tmp_path_factory) -> Path:
    """A filled project with its first page in use from half the database's length on
    overwritten with 0xFF (a free page there would be damage no check can see)."""
    project = filled(tmp_path_factory.mktemp("damaged") / "p")
    path = db_path(project)
    assert not path.with_name("lcbot.db-wal").exists()
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    free = free_pages(data, page_size)
    page = len(data) // 2 // page_size + 1
    while page in free:
        page += 1
    with open(path, "r+b") as handle:
        handle.seek((page - 1) * page_size)
        handle.write(b"\xff" * page_size)
    assert quick_check(path) != "ok"  # SQLite itself sees the damage
    return project


@pytest.fixture
def damaged(damaged_template, tmp_path) -> Path:
    project = tmp_path / "p"
    shutil.copytree(damaged_template, project)
    return project


DB_COMMANDS = [
    ("run", "--transport", "console"),
    ("alert", "x"),
    ("alert", "x", "--level", "critical", "--key", "disk:/"),
    ("user", "add", "dave", "--pri", "user"),
    ("user", "invite", "carol"),
    ("user", "remove", "carol"),
    ("outbox", "list"),
    ("outbox", "retry", "--dead"),
    ("outbox", "purge", "--sent"),
    ("alerts", "recent"),
    ("alerts", "purge", "--older-than", "0s"),
]


@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_damaged_database_is_reported_and_left_alone(damaged, args):
    path = db_path(damaged)
    before = path.read_bytes()
    toml = (damaged / "lcbot.toml").read_bytes()
    ran = lcbot(damaged, *args, input="help\n")
    assert ran.returncode == 1, ran
    line = one_line(ran.stderr)
    assert f"the database {path} is damaged" in line
    assert "nothing was written" in line
    assert '"Recovering a damaged database" in lcbot\'s README' in line
    assert path.read_bytes() == before
    assert (damaged / "lcbot.toml").read_bytes() == toml


def test_a_large_damaged_file_is_found_at_the_bot_start_then_by_every_command(damaged, tmp_path):
    """Above CHECK_LIMIT (0 here, set in the child) a CLI command does not check the whole
    file; the bot does at start, and its finding makes every later command check it whole
    until a check passes (the file was replaced)."""
    large = patched(tmp_path / "site", "import lcbot.db\nlcbot.db.CHECK_LIMIT = 0\n")
    path = db_path(damaged)
    note = path.with_name("lcbot.db-damaged")
    assert lcbot(damaged, "outbox", "list", **large).returncode == 0  # damage not read
    ran = lcbot(damaged, "run", "--transport", "console", input="help\n", **large)
    assert ran.returncode == 1, ran
    assert f"the database {path} is damaged" in one_line(ran.stderr)
    assert note.exists()
    before = path.read_bytes()
    for args in (("outbox", "list"), ("alert", "x"), ("user", "invite", "carol")):
        ran = lcbot(damaged, *args, **large)
        assert ran.returncode == 1, (args, ran)
        assert f"the database {path} is damaged" in one_line(ran.stderr)
    assert path.read_bytes() == before

    good = tmp_path / "good.db"  # a sound file put back in place (the note stays behind)
    connect(good).close()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    shutil.copy(good, path)
    ran = lcbot(damaged, "alert", "y", **large)
    assert ran.returncode == 0, ran.stderr
    assert not note.exists()


def readme_recovery_blocks() -> list[str]:
    readme = (REPO / "README.md").read_text()
    start = readme.index("### Recovering a damaged database")
    end = readme.index("\n#", start + 4)
    blocks = re.findall(r"```sh\n(.*?)```", readme[start:end], flags=re.S)
    assert len(blocks) == 2, "the README's recovery section: .recover, then .dump"
    return blocks


def usable(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return db.execute("SELECT count(*) FROM alerts").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def recovered_rows(project: Path) -> int:
    """Alerts in the recovered database, seen through lcbot (which must accept it)."""
    assert quick_check(db_path(project)) == "ok"
    listed = lcbot(project, "alerts", "recent", "-n", "5", "--json")
    assert listed.returncode == 0, listed.stderr
    raised = lcbot(project, "alert", "after the recovery")
    assert raised.returncode == 0, raised.stderr
    assert query(project, "SELECT text FROM alerts ORDER BY id DESC LIMIT 1") == [
        ("after the recovery",)
    ]
    assert lcbot(project, "user", "invite", "carol").returncode == 0
    return query(project, "SELECT count(*) FROM alerts")[0][0]


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 shell")
def test_the_readme_recovery_steps_work(damaged):
    """Run the README's two blocks in the data dir as written: ``.recover`` (when this
    sqlite3 has it), then the ``.dump`` way, which works with every sqlite3."""
    recover, dump = readme_recovery_blocks()
    data = db_path(damaged).parent
    subprocess.run(["bash", "-c", recover], cwd=data, capture_output=True, timeout=60)
    assert (data / "damaged" / "lcbot.db").exists()
    if usable(db_path(damaged)):  # this sqlite3 has .recover
        assert recovered_rows(damaged) > ROWS * 0.9
    done = subprocess.run(["bash", "-c", dump], cwd=data, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert recovered_rows(damaged) > ROWS * 0.9  # the rows on the damaged pages are lost


# --- a data dir that cannot be created ----------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("run", "--transport", "console"), ("alert", "x"), ("user", "add", "dave", "--pri", "user")],
    ids=lambda a: a[0],
)
def test_a_data_dir_that_cannot_be_created(tmp_path, args):
    project = make_project(tmp_path / "p")
    toml = project / "lcbot.toml"
    toml.write_text(toml.read_text().replace('".lcbot"', '"lcbot.toml/state"'))  # under a file
    before = toml.read_bytes()
    ran = lcbot(project, *args)
    assert ran.returncode == 2, ran
    line = one_line(ran.stderr)
    assert f"{project}/lcbot.toml/state" in line and "[bot] data_dir" in line
    assert "Not a directory" in line
    assert toml.read_bytes() == before
