"""Plugin discovery with real parts: folder plugins, an installed distribution, failures.

Load order (which decides who keeps a command name): built-in plugins, then installed
distributions exposing the ``lcbot`` entry-point group, then the files and packages of each
plugin folder, sorted by name.

The installed distribution is built and installed by pip into a private ``--target``
folder once per module; only subprocesses that get it on ``PYTHONPATH`` see it, so the
test environment is never changed. It is built offline with a tiny in-tree PEP 517
backend: setuptools 65 (in the venv) needs the ``wheel`` package for ``bdist_wheel``, which
is not installed, and build isolation would need the network to fetch it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lcbot.plugins import BUILTINS
from tests.procs import lcbot

BUILTIN = [module.rsplit(".", 1)[-1] for module in BUILTINS]  # "basics", …

HELLO_VERSION = "1.2.3"

HELLO_PYPROJECT = f"""\
[build-system]
requires = []
build-backend = "tiny_backend"
backend-path = ["."]

[project]
name = "lcbot-plugin-hello"
version = "{HELLO_VERSION}"
description = "A test plugin for lcbot."

[project.entry-points.lcbot]
hello = "lcbot_plugin_hello"
"""

HELLO_MODULE = """\
from lcbot import hookimpl


@hookimpl
def register_commands(registry):
    @registry.command("hello", help="greet the caller")
    def hello(ctx):
        return f"hello from the installed plugin, {ctx.user.name}!"
"""

# Builds a pure-Python wheel of the one module, with the metadata and entry points of
# [project] in pyproject.toml. Enough for pip to build and install a real distribution.
TINY_BACKEND = """\
import base64
import hashlib
import pathlib
import zipfile

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

HERE = pathlib.Path(__file__).parent


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]
    dist = project["name"].replace("-", "_")
    version = project["version"]
    info = f"{dist}-{version}.dist-info"
    entry_points = "".join(
        f"[{group}]\\n" + "".join(f"{k} = {v}\\n" for k, v in eps.items())
        for group, eps in project.get("entry-points", {}).items()
    )
    files = {
        "lcbot_plugin_hello.py": (HERE / "lcbot_plugin_hello.py").read_bytes(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\\nName: {project['name']}\\nVersion: {version}\\n"
            f"Summary: {project.get('description', '')}\\n"
        ).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\\nGenerator: tiny_backend\\nRoot-Is-Purelib: true\\n"
            b"Tag: py3-none-any\\n"
        ),
        f"{info}/entry_points.txt": entry_points.encode(),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    name = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return name
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests here decide which plugins load; an outer LCBOT_LOAD_PLUGINS must not."""
    monkeypatch.delenv("LCBOT_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("LCBOT_LOG_LEVEL", raising=False)


# --- helpers ------------------------------------------------------------------------------


def write_plugin(folder: Path, name: str, source: str) -> Path:
    """Write ``folder/name`` (``x.py`` or ``pkg/__init__.py``…) with dedented ``source``."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def records_of(stdout: str) -> list[dict]:
    """The records of ``plugins list --json`` (a list: names may repeat on a clash)."""
    return json.loads(stdout)


def by_name(records: list[dict]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for record in records:
        assert record["name"] not in found, f"{record['name']} listed twice: {records}"
        found[record["name"]] = record
    return found


def plugins_in_process(cli) -> list[dict]:
    result = cli("plugins", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return records_of(result.stdout)


def commands_in_process(cli) -> dict[str, dict]:
    result = cli("commands", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)}


def console(cwd: Path, text: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``lcbot run --transport console`` as a real process, fed ``text`` on stdin."""
    result = lcbot(cwd, "run", "--transport", "console", input=text, **(env or {}))
    assert result.returncode == 0, result.stderr
    return result


# --- folder plugins -------------------------------------------------------------------------


def test_folder_module_plugin_is_listed_with_hooks_and_commands(cfg_path, cli):
    path = write_plugin(
        cfg_path.parent / "plugins",
        "greeter.py",
        """
        from lcbot import CmdType, Pri, hookimpl

        __version__ = "0.4"


        @hookimpl
        def lcbot_startup(bot):
            pass


        @hookimpl
        def register_commands(registry):
            @registry.command("hi")
            def hi(ctx):
                '''say hi back'''
                return "hi there"

            @registry.command("greeting", kind=CmdType.SET, pri=Pri.ADMIN, help="set it")
            def greeting(ctx):
                return "ok"
        """,
    )
    records = plugins_in_process(cli)
    assert [r["name"] for r in records] == [*BUILTIN, "greeter"]
    greeter = records[-1]
    assert greeter == {
        "name": "greeter",
        "source": "dir",
        "version": "0.4",
        "location": str(path),
        "status": "ok",
        "error": None,
        "hooks": ["lcbot_startup", "register_commands"],
        "commands": ["greeting", "hi"],
    }
    assert {r["source"] for r in records[:-1]} == {"builtin"}
    assert records[0]["commands"] == ["help", "jobs", "quit", "whoami"]

    commands = commands_in_process(cli)
    assert {n for n, c in commands.items() if c["plugin"] not in BUILTIN} == {"greeting", "hi"}
    assert {"help", "quit", "whoami"} <= set(commands)
    assert commands["hi"] == {
        "name": "hi",
        "type": "GET",
        "pri": "user",
        "plugin": "greeter",
        "help": "say hi back",
        "concurrency": "queue",
        "confirm": False,
        "approve": False,
    }
    assert (commands["greeting"]["type"], commands["greeting"]["pri"]) == ("SET", "admin")
    assert commands["greeting"]["plugin"] == "greeter"
    assert commands["help"]["plugin"] == "basics"

    answered = console(cfg_path.parent, "hi\n")
    assert answered.stdout.splitlines() == ["hi there"]


def test_folder_package_plugin_and_ignored_entries(cfg_path, cli):
    plugins = cfg_path.parent / "plugins"
    write_plugin(
        plugins,
        "deep/__init__.py",
        """
        from lcbot import hookimpl

        from .answers import answer  # a relative import: a real package


        @hookimpl
        def register_commands(registry):
            registry.command("answer", help="the answer")(answer)
        """,
    )
    write_plugin(plugins, "deep/answers.py", "def answer(ctx):\n    return '42'\n")
    # Not plugins: private and hidden files, non-Python files, folders without __init__.py.
    trap = "raise RuntimeError('must not be imported')\n"
    write_plugin(plugins, "_private.py", trap)
    write_plugin(plugins, ".hidden.py", trap)
    write_plugin(plugins, "notes.txt", trap)
    write_plugin(plugins, "nopkg/mod.py", trap)

    records = plugins_in_process(cli)
    assert [r["name"] for r in records] == [*BUILTIN, "deep"]
    deep = records[-1]
    assert (deep["source"], deep["status"], deep["error"]) == ("dir", "ok", None)
    assert deep["location"] == str(plugins / "deep")
    assert deep["hooks"] == ["register_commands"]
    assert deep["commands"] == ["answer"]
    assert commands_in_process(cli)["answer"]["plugin"] == "deep"

    answered = console(cfg_path.parent, "answer\n")
    assert answered.stdout.splitlines() == ["42"]


def test_missing_plugin_folder_is_fine(cfg_path, cli):
    assert not (cfg_path.parent / "plugins").exists()
    assert [r["name"] for r in plugins_in_process(cli)] == BUILTIN


# --- an installed distribution with an lcbot entry point ------------------------------------


@pytest.fixture(scope="module")
def hello_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and pip-install ``lcbot-plugin-hello`` into a private folder; return it."""
    root = tmp_path_factory.mktemp("hello-dist")
    pkg = root / "lcbot-plugin-hello"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(HELLO_PYPROJECT)
    (pkg / "lcbot_plugin_hello.py").write_text(HELLO_MODULE)
    (pkg / "tiny_backend.py").write_text(TINY_BACKEND)
    target = root / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",  # offline
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(pkg),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / f"lcbot_plugin_hello-{HELLO_VERSION}.dist-info" / "entry_points.txt").is_file()
    return target


def with_dist(target: Path, **extra: str) -> dict[str, str]:
    """Environment for a subprocess that sees the installed distribution."""
    paths = [str(target), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), **extra}


def lcbot_json(cwd: Path, env: dict[str, str], *args: str):
    result = lcbot(cwd, *args, "--json", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


FOLDER_AAA = """
from lcbot import hookimpl


@hookimpl
def register_commands(registry):
    @registry.command("aaa")
    def aaa(ctx):
        return "aaa here"
"""


def test_entrypoint_plugin_is_listed_and_answers(hello_dist, cfg_path):
    project = cfg_path.parent
    # "aaa" sorts before "hello", yet folder plugins load after installed ones.
    write_plugin(project / "plugins", "aaa.py", FOLDER_AAA)
    env = with_dist(hello_dist)

    records = lcbot_json(project, env, "plugins", "list")
    assert [(r["name"], r["source"]) for r in records] == [
        *((name, "builtin") for name in BUILTIN),
        ("hello", "entrypoint"),
        ("aaa", "dir"),
    ]
    hello = records[len(BUILTIN)]
    assert hello == {
        "name": "hello",
        "source": "entrypoint",
        "version": HELLO_VERSION,
        "location": "lcbot_plugin_hello",
        "status": "ok",
        "error": None,
        "hooks": ["register_commands"],
        "commands": ["hello"],
    }
    commands = {c["name"]: c for c in lcbot_json(project, env, "commands", "list")}
    assert commands["hello"]["plugin"] == "hello"
    assert commands["hello"]["help"] == "greet the caller"

    answered = console(project, "hello\n", env=env)
    assert answered.stdout.splitlines() == ["hello from the installed plugin, alice!"]

    # Without the private folder on the path, the distribution does not exist.
    names = [r["name"] for r in lcbot_json(project, {}, "plugins", "list")]
    assert names == [*BUILTIN, "aaa"]


@pytest.mark.parametrize(
    ("allow", "expected"),
    [
        # the variable selects installed plugins; folder plugins are chosen in lcbot.toml
        ("", {"hello": "disabled", "aaa": "ok"}),
        ("hello", {"hello": "ok", "aaa": "ok"}),
        (" aaa , other", {"hello": "disabled", "aaa": "ok"}),
        ("hello,aaa", {"hello": "ok", "aaa": "ok"}),
    ],
)
def test_load_plugins_env_selects_external_plugins(hello_dist, cfg_path, allow, expected):
    project = cfg_path.parent
    write_plugin(project / "plugins", "aaa.py", FOLDER_AAA)
    env = with_dist(hello_dist, LCBOT_LOAD_PLUGINS=allow)

    records = by_name(lcbot_json(project, env, "plugins", "list"))
    # built-in and folder plugins always load; the variable selects installed ones only
    assert {name: r["status"] for name, r in records.items()} == dict.fromkeys(BUILTIN, "ok") | (
        expected
    )
    for name, status in expected.items():
        if status == "disabled":
            assert records[name]["commands"] == []
            assert records[name]["error"] is None
    commands = {c["name"] for c in lcbot_json(project, env, "commands", "list")}
    assert ("hello" in commands) is (expected["hello"] == "ok")
    assert ("aaa" in commands) is (expected["aaa"] == "ok")
    assert {"help", "whoami", "quit"} <= commands

    answered = console(project, "hello\nwhoami\n", env=env)
    first = (
        "hello from the installed plugin, alice!"
        if expected["hello"] == "ok"
        else "unknown command 'hello' — send help"
    )
    assert answered.stdout.splitlines() == [first, "alice (root)"]


def test_config_disable_skips_installed_plugin(hello_dist, cfg_path):
    project = cfg_path.parent
    cfg_path.write_text(
        cfg_path.read_text().replace("[plugins]\n", '[plugins]\ndisable = ["hello"]\n')
    )
    env = with_dist(hello_dist)

    records = by_name(lcbot_json(project, env, "plugins", "list"))
    assert records["hello"]["status"] == "disabled"
    assert records["hello"]["source"] == "entrypoint"
    assert records["hello"]["version"] == HELLO_VERSION
    assert all(records[name]["status"] == "ok" for name in BUILTIN)
    assert "hello" not in {c["name"] for c in lcbot_json(project, env, "commands", "list")}

    answered = console(project, "hello\n", env=env)
    assert answered.stdout.splitlines() == ["unknown command 'hello' — send help"]


def test_installed_plugin_keeps_command_over_folder_plugin(hello_dist, cfg_path):
    project = cfg_path.parent
    write_plugin(
        project / "plugins",
        "aaa.py",
        """
        from lcbot import hookimpl


        @hookimpl
        def register_commands(registry):
            @registry.command("hello")
            def hello(ctx):
                return "hello from the folder"

            @registry.command("help")
            def help_(ctx):
                return "no help from the folder"
        """,
    )
    env = with_dist(hello_dist)

    commands = {c["name"]: c for c in lcbot_json(project, env, "commands", "list")}
    assert commands["hello"]["plugin"] == "hello"
    assert commands["help"]["plugin"] == "basics"
    records = by_name(lcbot_json(project, env, "plugins", "list"))
    assert records["aaa"]["status"] == "ok"
    assert records["aaa"]["commands"] == []

    answered = console(project, "hello\n", env=env)
    assert answered.stdout.splitlines() == ["hello from the installed plugin, alice!"]
    assert "command 'hello' from plugin 'aaa' ignored: plugin 'hello' registered it first" in (
        answered.stderr
    )
    assert "command 'help' from plugin 'aaa' ignored: plugin 'basics' registered it first" in (
        answered.stderr
    )


def test_folder_plugin_named_like_installed_one_is_refused(hello_dist, cfg_path):
    project = cfg_path.parent
    shadow = write_plugin(project / "plugins", "hello.py", FOLDER_AAA)
    records = lcbot_json(project, with_dist(hello_dist), "plugins", "list")
    hellos = [r for r in records if r["name"] == "hello"]
    assert [(r["source"], r["status"]) for r in hellos] == [("entrypoint", "ok"), ("dir", "failed")]
    assert hellos[1]["location"] == str(shadow)
    assert hellos[1]["error"] == "name 'hello' is already used by lcbot_plugin_hello"


# --- failures ---------------------------------------------------------------------------------

GOOD = """
from lcbot import hookimpl


@hookimpl
def register_commands(registry):
    @registry.command("ping")
    def ping(ctx):
        return "pong"
"""


def test_broken_plugins_are_reported_and_the_bot_runs_without_them(cfg_path, cli):
    plugins = cfg_path.parent / "plugins"
    write_plugin(plugins, "broken.py", "import os\n\nraise RuntimeError('boom at import')\n")
    write_plugin(
        plugins,
        "badreg.py",
        """
        from lcbot import hookimpl


        @hookimpl
        def register_commands(registry):
            @registry.command("half")
            def half(ctx):
                return "half registered"

            raise ValueError("bad registration")
        """,
    )
    write_plugin(
        plugins,
        "badstart.py",
        """
        from lcbot import hookimpl


        @hookimpl
        def lcbot_startup(bot):
            raise OSError("no socket for badstart")


        @hookimpl
        def register_commands(registry):
            @registry.command("bs")
            def bs(ctx):
                return "badstart answered"
        """,
    )
    write_plugin(plugins, "good.py", GOOD)

    records = by_name(plugins_in_process(cli))
    assert list(records) == [*BUILTIN, "badreg", "badstart", "broken", "good"]
    assert records["broken"]["status"] == "failed"
    assert records["broken"]["error"] == "load: RuntimeError: boom at import"
    assert records["broken"]["commands"] == []
    assert records["badreg"]["status"] == "failed"
    assert records["badreg"]["error"] == "register_commands: ValueError: bad registration"
    assert records["badreg"]["commands"] == []
    # startup hooks do not run for a listing: badstart looks fine until the bot starts
    assert (records["badstart"]["status"], records["badstart"]["commands"]) == ("ok", ["bs"])
    for name in (*BUILTIN, "good"):
        assert (records[name]["status"], records[name]["error"]) == ("ok", None)
    commands = commands_in_process(cli)
    assert "half" not in commands  # registered before the raise, then removed
    assert commands["ping"]["plugin"] == "good"

    result = console(cfg_path.parent, "help\nping\nhalf\nbs\n")
    lines = result.stdout.splitlines()
    end = lines.index("pong")
    help_block, answers = lines[:end], lines[end:]
    assert help_block[0] == "commands:"
    assert "ping" in help_block
    assert "help — list the commands you may run; help NAME for one" in help_block
    assert not [line for line in help_block if line.startswith(("half", "bs"))]
    assert answers == [
        "pong",
        "unknown command 'half' — send help",
        "unknown command 'bs' — send help",  # badstart lost its commands at start-up
    ]
    err = result.stderr
    assert "plugin broken failed during load and is disabled:" in err
    assert "Traceback (most recent call last):" in err
    assert 'broken.py", line 3, in <module>' in err
    assert "RuntimeError: boom at import" in err
    assert "plugin badreg failed during register_commands and is disabled:" in err
    assert "ValueError: bad registration" in err
    assert "plugin badstart failed during lcbot_startup and is disabled:" in err
    assert "OSError: no socket for badstart" in err


def test_same_command_in_two_folder_plugins_first_by_name_wins(cfg_path, cli, caplog):
    plugins = cfg_path.parent / "plugins"
    # written first, loaded last: load order is by name, not by creation time
    write_plugin(
        plugins,
        "zzz.py",
        """
        from lcbot import hookimpl


        @hookimpl
        def register_commands(registry):
            @registry.command("ping")
            def ping(ctx):
                return "pong from zzz"

            @registry.command("zonly")
            def zonly(ctx):
                return "only zzz"
        """,
    )
    write_plugin(plugins, "aaa.py", GOOD)
    caplog.set_level(logging.WARNING, logger="lcbot")

    commands = commands_in_process(cli)
    assert commands["ping"]["plugin"] == "aaa"
    assert commands["zonly"]["plugin"] == "zzz"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "command 'ping' from plugin 'zzz' ignored: plugin 'aaa' registered it first" in (
        warnings
    )
    records = by_name(plugins_in_process(cli))
    assert (records["zzz"]["status"], records["zzz"]["commands"]) == ("ok", ["zonly"])
    assert records["aaa"]["commands"] == ["ping"]

    result = console(cfg_path.parent, "ping\nzonly\n")
    assert result.stdout.splitlines() == ["pong", "only zzz"]
    assert "command 'ping' from plugin 'zzz' ignored: plugin 'aaa' registered it first" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (
            "@hookimpl\ndef register_command(registry):\n    pass\n",
            "unknown hook 'register_command'",
        ),
        (
            "@hookimpl\ndef register_commands(reg):\n    pass\n",
            "Argument(s) {'reg'} are declared in the hookimpl but can not be found",
        ),
    ],
    ids=["misspelled-hook", "misspelled-argument"],
)
def test_misspelled_hook_is_reported_as_failed(cfg_path, cli, source, error):
    plugins = cfg_path.parent / "plugins"
    write_plugin(plugins, "typo.py", "from lcbot import hookimpl\n\n\n" + source)
    write_plugin(plugins, "zgood.py", GOOD)

    records = by_name(plugins_in_process(cli))
    assert records["typo"]["status"] == "failed"
    assert records["typo"]["error"].startswith("load: PluginValidationError: ")
    assert error in records["typo"]["error"]
    assert records["typo"]["hooks"] == []
    assert (records["zgood"]["status"], records["zgood"]["commands"]) == ("ok", ["ping"])

    result = console(cfg_path.parent, "ping\n")
    assert result.stdout.splitlines() == ["pong"]
    assert "plugin typo failed during load and is disabled:" in result.stderr


def test_folder_plugin_named_like_a_builtin_is_refused(cfg_path, cli):
    shadow = write_plugin(cfg_path.parent / "plugins", "basics.py", GOOD)
    records = plugins_in_process(cli)
    assert [(r["name"], r["source"], r["status"]) for r in records] == [
        *((name, "builtin", "ok") for name in BUILTIN),
        ("basics", "dir", "failed"),
    ]
    assert records[-1]["location"] == str(shadow)
    assert records[-1]["error"] == "name 'basics' is already used by lcbot.builtin.basics"
    assert "ping" not in commands_in_process(cli)


def test_plugin_calling_sys_exit_is_only_marked_failed(cfg_path, cli):
    plugins = cfg_path.parent / "plugins"
    write_plugin(plugins, "exiter.py", "raise SystemExit('bye')\n")
    write_plugin(
        plugins,
        "regexit.py",
        """
        import sys

        from lcbot import hookimpl


        @hookimpl
        def register_commands(registry):
            sys.exit(3)
        """,
    )
    write_plugin(plugins, "good.py", GOOD)

    records = by_name(plugins_in_process(cli))
    assert (records["exiter"]["status"], records["exiter"]["error"]) == (
        "failed",
        "load: SystemExit: bye",
    )
    assert (records["regexit"]["status"], records["regexit"]["error"]) == (
        "failed",
        "register_commands: SystemExit: 3",
    )
    assert (records["good"]["status"], records["good"]["commands"]) == ("ok", ["ping"])

    result = console(cfg_path.parent, "ping\n")
    assert result.stdout.splitlines() == ["pong"]
    assert "plugin exiter failed during load and is disabled:" in result.stderr
    assert "plugin regexit failed during register_commands and is disabled:" in result.stderr
