"""The plugin author kit: ``lcbot plugin new``, the ``lcbot_bot`` fixture, an installed scaffold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lcbot import CmdType, Pri, hookimpl
from tests import procs
from tests.procs import child_env, make_project, with_path


def lcbot(*args: str, cwd: Path, pythonpath: Path | None = None, input: str = ""):
    env = with_path(pythonpath) if pythonpath is not None else {}
    return procs.lcbot(cwd, *args, input=input, timeout=120, **env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """``lcbot plugin new weather`` → pip-installed into a target dir (kept off the test env)."""
    root = tmp_path_factory.mktemp("kit")
    made = lcbot("plugin", "new", "weather", "--dir", str(root), cwd=root)
    assert made.returncode == 0, made.stderr
    package = root / "lcbot-plugin-weather"
    target = root / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--target",
            str(target),
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return package, target


def test_scaffold_files(installed):
    package, _ = installed
    assert sorted(
        p.relative_to(package).as_posix()
        for p in package.rglob("*")
        if p.is_file() and "build" not in p.parts and ".egg-info" not in str(p)
    ) == [
        "README.md",
        "lcbot_plugin_weather/__init__.py",
        "pyproject.toml",
        "tests/test_lcbot_plugin_weather.py",
    ]
    pyproject = (package / "pyproject.toml").read_text()
    assert '[project.entry-points.lcbot]\nweather = "lcbot_plugin_weather"' in pyproject
    module = (package / "lcbot_plugin_weather" / "__init__.py").read_text()
    assert "CmdType.GET" in module and "CmdType.SET" in module and "def lcbot_startup" in module


def test_scaffold_tests_pass_with_pytest(installed):
    package, target = installed
    env = child_env(PYTHONPATH=str(target))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_installed_scaffold_is_listed_and_answers_on_the_console(installed, tmp_path):
    _, target = installed
    project = make_project(tmp_path / "p", {"me": "root", "bob": "admin"})
    plugins = json.loads(lcbot("plugins", "list", "--json", cwd=project, pythonpath=target).stdout)
    (weather,) = [p for p in plugins if p["name"] == "weather"]
    assert weather["source"] == "entrypoint" and weather["version"] == "0.1.0"
    assert weather["commands"] == ["weather", "weather-set"] and weather["status"] == "ok"
    commands = json.loads(
        lcbot("commands", "list", "--json", cwd=project, pythonpath=target).stdout
    )
    assert {c["name"]: c["pri"] for c in commands if c["plugin"] == "weather"} == {
        "weather": "user",
        "weather-set": "admin",
    }
    run = lcbot(
        "run",
        "--transport",
        "console",
        cwd=project,
        pythonpath=target,
        input="weather\nweather-set:sunny\nweather\n",
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:2] == ["weather: default", "weather set to sunny"]
    assert "weather: sunny" in lines and "→ bob: me set weather-set: sunny" in lines
    hidden = lcbot("commands", "list", "--json", cwd=project, pythonpath=None)
    assert "weather" not in hidden.stdout  # not installed without the target on the path


@pytest.mark.parametrize("name", ["Weather", "9lives", "bad name", "x--y", "x-", "a" * 41, ""])
def test_invalid_names_are_refused(tmp_path, name):
    result = lcbot("plugin", "new", name, "--dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "invalid plugin name" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_never_overwritten(tmp_path):
    folder = tmp_path / "lcbot-plugin-x"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    result = lcbot("plugin", "new", "x", "--dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "already exists" in result.stderr
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


class Counter:
    __name__ = "counter"

    def __init__(self):
        self.value = 0

    @hookimpl
    def register_commands(self, registry):
        @registry.command("count", kind=CmdType.SET, pri=Pri.ADMIN)
        def count(ctx):
            self.value += int(ctx.extra)
            ctx.reply("adding…")
            return f"count = {self.value}"

        @registry.command("page")
        async def page(ctx):
            ctx.alert(f"paged by {ctx.user.name}", level="critical")

    @hookimpl
    def on_alert(self, alert):
        if "ignore" in alert.text:
            return False


def test_fixture_send_alert_and_sent(lcbot_bot):
    counter = Counter()
    bot = lcbot_bot(plugins=[counter], users={"ann": "admin", "ben": "admin", "cy": "user"})
    assert bot.send("ann", "count 2") == ["adding…", "count = 2"]
    assert bot.send("ann", "count:3") == ["adding…", "count = 5"]
    assert bot.messages_to("ben") == ["ann set count: 2", "ann set count: 3"]
    assert bot.send("cy", "count 1") == ["not allowed: count"]
    assert bot.send("cy", "page") == ["CRITICAL paged by cy"]  # caused by this message
    assert ("ann", "CRITICAL paged by cy") in bot.sent and (
        "cy",
        "CRITICAL paged by cy",
    ) in bot.sent
    bot.alert("ignore me", level="critical")
    assert not any("ignore me" in text for _, text in bot.sent)
    bot.alert("disk full", level="warning")
    assert ("ben", "WARNING disk full") in bot.sent and ("cy", "WARNING disk full") not in bot.sent


def test_fixture_config_and_default_users(lcbot_bot):
    bot = lcbot_bot(config={"alerts": {"routes": {"info": "user"}}})
    assert bot.send("carol", "whoami") == ["carol (user)"]
    bot.alert("fyi", level="info")
    assert ("carol", "INFO fyi") in bot.sent


def test_fixture_reports_a_broken_plugin(lcbot_bot):
    class Broken:
        __name__ = "broken"

        @hookimpl
        def register_command(self, registry):  # misspelled hook
            pass

    with pytest.raises(RuntimeError, match="plugin broken failed"):
        lcbot_bot(plugins=[Broken()])
