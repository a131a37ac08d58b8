"""``lcbot init``, ``lcbot user …`` and ``lcbot config check``: behaviour and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lcbot import __version__
from tests.procs import lcbot, spawn

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def users_in(path):
    return [(u["name"], u["pri"], u.get("wxid")) for u in tomllib.loads(path.read_text())["users"]]


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"lcbot {__version__}"


def test_every_command_has_help(cli):
    for args in (
        [],
        ["user"],
        ["user", "add"],
        ["user", "remove"],
        ["user", "list"],
        ["user", "set-pri"],
        ["init"],
        ["config"],
        ["config", "check"],
    ):
        result = cli(*args, "--help")
        assert result.exit_code == 0, args
        assert "Usage" in result.stdout


def test_init_writes_starter_and_refuses_overwrite(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LCBOT_CONFIG", raising=False)
    result = cli("init", "--root", "ops")
    assert result.exit_code == 0, result.stderr
    path = tmp_path / "lcbot.toml"
    text = path.read_text()
    assert text.startswith("# lcbot configuration. Reference:")
    assert "do not keep comments" in text
    assert users_in(path) == [("ops", "root", None)]
    before = path.read_bytes()
    again = cli("init", "--root", "other")
    assert again.exit_code == 2
    assert "already exists" in again.stderr
    assert path.read_bytes() == before


def test_add_list_set_pri_remove(cfg_path, cli):
    assert cli("user", "add", "carol", "--pri", "user", "--wxid", "wxid_c").exit_code == 0
    assert users_in(cfg_path)[-1] == ("carol", "user", "wxid_c")
    listed = cli("user", "list", "--json")
    assert json.loads(listed.stdout) == [
        {"name": "alice", "pri": "root", "wxid": None, "ilink": None, "linked": False},
        {"name": "bob", "pri": "admin", "wxid": None, "ilink": None, "linked": False},
        {"name": "carol", "pri": "user", "wxid": "wxid_c", "ilink": None, "linked": False},
    ]
    table = cli("user", "list")
    assert table.exit_code == 0
    assert "carol" in table.stdout and "wxid_c" in table.stdout and "not bound" in table.stdout
    promoted = cli("user", "set-pri", "carol", "ADMIN")
    assert promoted.exit_code == 0 and "user → admin" in promoted.stdout
    assert ("carol", "admin", "wxid_c") in users_in(cfg_path)
    assert cli("user", "remove", "Carol").exit_code == 0  # names are case-insensitive
    assert [u[0] for u in users_in(cfg_path)] == ["alice", "bob"]


def test_config_from_env_and_option(cfg_path, cli, monkeypatch, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text('[[users]]\nname = "zed"\npri = "root"\n')
    monkeypatch.setenv("LCBOT_CONFIG", str(other))
    assert [u["name"] for u in json.loads(cli("user", "list", "--json").stdout)] == ["zed"]
    result = cli("user", "list", "--json", "--config", str(cfg_path))
    assert [u["name"] for u in json.loads(result.stdout)] == ["alice", "bob"]


BAD_EDITS = [
    (["user", "add", "dave", "--pri", "boss"], "valid privileges: root, admin, user"),
    (["user", "add", "bob", "--pri", "user"], "user 'bob' already exists"),
    (["user", "add", "BOB", "--pri", "user"], "already exists"),
    (["user", "add", "", "--pri", "user"], "invalid user name ''"),
    (["user", "add", "da ve", "--pri", "user"], "invalid user name"),
    (["user", "add", "da\tve", "--pri", "user"], "invalid user name"),
    (["user", "add", "da\x07ve", "--pri", "user"], "invalid user name"),
    (["user", "add", "dave", "--pri", "user", "--wxid", "a b"], "invalid wxid"),
    (["user", "remove", "nobody"], "no user named 'nobody'"),
    (["user", "set-pri", "nobody", "user"], "no user named 'nobody'"),
    (["user", "set-pri", "bob", "wizard"], "valid privileges"),
    (["user", "remove", "alice"], "last root user"),
    (["user", "set-pri", "alice", "admin"], "last root user"),
]


@pytest.mark.parametrize(("args", "message"), BAD_EDITS)
def test_bad_edits_exit_2_and_write_nothing(cfg_path, cli, args, message):
    before = cfg_path.read_bytes()
    result = cli(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert cfg_path.read_bytes() == before


def test_duplicate_wxid_refused(cfg_path, cli):
    assert cli("user", "add", "c", "--pri", "user", "--wxid", "w1").exit_code == 0
    before = cfg_path.read_bytes()
    result = cli("user", "add", "d", "--pri", "user", "--wxid", "w1")
    assert result.exit_code == 2 and "already belongs" in result.stderr
    assert cfg_path.read_bytes() == before


def test_force_allows_removing_last_root(cfg_path, cli):
    assert cli("user", "set-pri", "alice", "user", "--force").exit_code == 0
    assert cli("user", "set-pri", "bob", "root").exit_code == 0
    assert cli("user", "remove", "bob", "--force").exit_code == 0
    assert [u[:2] for u in users_in(cfg_path)] == [("alice", "user")]
    check = cli("config", "check")
    assert check.exit_code == 0 and "no root user" in check.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[bot\nname = 1\n", ":1:5: invalid TOML"),
        ('[[users]]\nname = "x"\npri = 5\n', "pri must be one of root, admin, user"),
        ('[[users]]\nname = "x y"\npri = "root"\n', "invalid user name"),
    ],
)
@pytest.mark.parametrize(
    "args",
    [
        ["user", "add", "eve", "--pri", "user"],
        ["user", "remove", "x"],
        ["user", "list"],
        ["user", "set-pri", "x", "user"],
        ["config", "check"],
    ],
)
def test_broken_file_is_reported_and_left_unchanged(cfg_path, cli, content, message, args):
    cfg_path.write_text(content)
    before = cfg_path.read_bytes()
    result = cli(*args)
    assert result.exit_code == 2
    assert str(cfg_path) in result.stderr and message in result.stderr
    assert cfg_path.read_bytes() == before


def test_missing_config_hints_init(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LCBOT_CONFIG", raising=False)
    result = cli("user", "list")
    assert result.exit_code == 2 and "lcbot init" in result.stderr
    assert not (tmp_path / "lcbot.toml").exists()
    add = cli("user", "add", "x", "--pri", "root")
    assert add.exit_code == 2 and "lcbot init" in add.stderr
    assert list(tmp_path.iterdir()) == []


def test_config_check_summary(cfg_path, cli):
    result = cli("config", "check")
    assert result.exit_code == 0
    assert "users: 2 (1 root, 1 admin, 0 user" in result.stdout


def test_unknown_keys_survive_every_edit(cfg_path, cli):
    cfg_path.write_text(
        cfg_path.read_text()
        + "\n[future]\nratio = 0.5\nflags = [true, false]\nwhen = 2020-01-01T00:00:00Z\n"
        + '[future.sub]\nname = "x"\n'
    )
    cfg_path.write_text(cfg_path.read_text().replace('pri = "admin"', 'pri = "admin"\ncolor = 3'))
    expected = tomllib.loads(cfg_path.read_text())
    for args in (
        ["user", "add", "z", "--pri", "user"],
        ["user", "set-pri", "z", "admin"],
        ["user", "remove", "z"],
    ):
        assert cli(*args).exit_code == 0
        data = tomllib.loads(cfg_path.read_text())
        assert data["future"] == expected["future"]
        assert data["bot"] == expected["bot"] and data["plugins"] == expected["plugins"]
        assert data["users"][1] == {"name": "bob", "pri": "admin", "color": 3}


# --- real processes -----------------------------------------------------------------------


def test_subprocess_add_and_list(cfg_path):
    added = lcbot(cfg_path.parent, "user", "add", "frank", "--pri", "user")
    assert added.returncode == 0, added.stderr
    listed = lcbot(cfg_path.parent, "user", "list", "--json")
    assert [u["name"] for u in json.loads(listed.stdout)] == ["alice", "bob", "frank"]
    bad = lcbot(cfg_path.parent, "user", "add", "frank", "--pri", "user")
    assert bad.returncode == 2 and "already exists" in bad.stderr


def test_twenty_concurrent_adds_lose_nothing(cfg_path):
    procs = [
        spawn(
            cfg_path.parent,
            "user",
            "add",
            f"u{i}",
            "--pri",
            "user",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(20)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    names = {u[0] for u in users_in(cfg_path)}
    assert names == {"alice", "bob"} | {f"u{i}" for i in range(20)}


def run_probe(code: str, cwd) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (so its imports are its own)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_user_list_and_help_do_not_import_heavy_modules(cfg_path):
    probe = (
        "import sys; from lcbot.cli import app\n"
        "for argv in (['user', 'list'], ['--help']):\n"
        "    try: app(argv)\n"
        "    except SystemExit: pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('wechaty', 'pluggy', 'lcbot_plugin', 'sqlite3', 'asyncio', 'aiohttp', "
        "'cryptography') "
        "or m in ('lcbot.plugins', 'lcbot.app'))\n"
        "print('HEAVY', heavy)\n"
    )
    result = run_probe(probe, cfg_path.parent)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_main_builds_only_the_named_command_group(cfg_path):
    probe = (
        "import sys; sys.argv = ['lcbot', 'user', 'list', '--json']\n"
        "from lcbot.cli import main\n"
        "try: main()\n"
        "except SystemExit: pass\n"
        "print('CLI', sorted(m for m in sys.modules if m.startswith('lcbot.cli.')))\n"
    )
    result = run_probe(probe, cfg_path.parent)
    assert result.returncode == 0, result.stderr
    assert '"name": "alice"' in result.stdout
    assert "CLI ['lcbot.cli.common', 'lcbot.cli.users']" in result.stdout
