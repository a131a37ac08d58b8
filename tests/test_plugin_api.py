"""The plugin API: hooks called through pluggy (tryfirst, trylast, wrapper=True), each hook's
error policy, the per-plugin ``bot`` (state, config, jobs), and plugin config schemas."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from pathlib import Path

import pytest

from lcbot import CmdType, Pri, Setting, hookimpl
from lcbot.alerts import make_alert
from lcbot.errors import ConfigError
from lcbot.plugins import PluginHost
from lcbot.testing import Harness, running_bot
from tests.procs import REPO, lcbot, make_project

TEAM = {"root1": "root", "admin1": "admin", "admin2": "admin", "user1": "user"}


def run(coro):
    return asyncio.run(coro)


def sysmon():
    """plugins/sysmon.py, imported afresh (as a folder plugin would be)."""
    spec = importlib.util.spec_from_file_location("sysmon", REPO / "plugins" / "sysmon.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- hooks through pluggy -------------------------------------------------------------------


class Recorder:
    """on_alert implementations that record the order they ran in."""

    def __init__(self, calls: list[str], name: str, **opts) -> None:
        self.__name__ = name
        self.calls = calls

        @hookimpl(**opts)
        def on_alert(alert):
            calls.append(name)

        self.on_alert = on_alert


def test_tryfirst_and_trylast_mean_what_pluggy_says(tmp_path):
    calls: list[str] = []
    plugins = [
        Recorder(calls, "last", trylast=True),
        Recorder(calls, "plain_a"),
        Recorder(calls, "first", tryfirst=True),
        Recorder(calls, "plain_b"),
    ]

    async def go():
        async with running_bot(tmp_path, *plugins, users=TEAM) as bot:
            await bot.alert("x")
        assert calls[0] == "first" and calls[-1] == "last", calls
        assert calls[1:3] == ["plain_b", "plain_a"], calls  # otherwise: loaded last runs first

    run(go())


class Wrapper:
    """A new-style wrapper around authorize: it sees the votes and may replace the result."""

    __name__ = "wrapper"

    def __init__(self) -> None:
        self.seen: list[list] = []

    @hookimpl(wrapper=True)
    def authorize(self, user, command, extra):
        votes = yield  # the other implementations run here
        self.seen.append(list(votes))
        if command.name == "deploy" and extra == "friday":
            return [*votes, False]  # no deploys on Fridays
        return votes


class Deploy:
    __name__ = "deploy"

    @hookimpl
    def register_commands(self, registry):
        registry.command("deploy", kind=CmdType.SET, pri=Pri.ADMIN)(lambda ctx: "deployed")

    @hookimpl
    def authorize(self, user, command, extra):
        if command.name != "deploy":
            return None
        if extra == "!boom":
            raise RuntimeError("policy backend unreachable")
        return None


def test_wrapper_sees_and_changes_the_votes(tmp_path):
    wrapper = Wrapper()

    async def go():
        async with running_bot(tmp_path, Deploy(), wrapper, users=TEAM) as bot:
            assert await bot.send("admin1", "deploy monday") == ["deployed"]
            assert await bot.send("admin1", "deploy friday") == ["not allowed: deploy"]
            assert wrapper.seen and all(isinstance(v, list) for v in wrapper.seen)

    run(go())


def test_raising_authorize_denies_and_keeps_denying(tmp_path, caplog):
    async def go():
        async with running_bot(tmp_path, Deploy(), users=TEAM) as bot:
            with caplog.at_level(logging.ERROR, logger="lcbot.plugins"):
                for _ in range(3):  # fail closed every time: the plugin is not unregistered
                    assert await bot.send("admin1", "deploy !boom") == ["not allowed: deploy"]
            assert await bot.send("admin1", "deploy v2") == ["deployed"]  # still loaded
            record = bot.app.plugins.records["deploy"]
            assert record.status == "ok" and record.errors == 3
            assert "policy backend unreachable" in caplog.text
            assert caplog.text.count("Traceback") == 1  # the traceback once, then one line each
            # the notice of the SET that was allowed reaches the other admin
            assert bot.lines("admin2") == ["admin1 set deploy: v2"]

    run(go())


class HalfEdit:
    """Changes the alert, then raises: the change must not survive."""

    __name__ = "halfedit"

    @hookimpl(tryfirst=True)
    def on_alert(self, alert):
        alert.text = "HIJACKED"
        alert.recipients = ["user1"]
        alert.level = "info"
        raise ValueError("half way")


def test_raising_on_alert_leaves_the_alert_as_it_was(tmp_path):
    seen = []

    class Later:
        __name__ = "later"

        @hookimpl(trylast=True)
        def on_alert(self, alert):
            seen.append((alert.text, alert.level, alert.recipients))

    async def go():
        async with running_bot(tmp_path, HalfEdit(), Later(), users=TEAM) as bot:
            alert = await bot.alert("disk full", level="critical")
            assert seen == [("disk full", "critical", None)]
            assert bot.outcome(alert)["state"] == "delivered"
            assert sorted(bot.outcome(alert)["to"]) == sorted(TEAM)
            assert "CRITICAL disk full" in bot.lines("admin1")

    run(go())


# --- the per-plugin bot -----------------------------------------------------------------------


def test_two_bots_in_one_process_do_not_share_sysmon_state(tmp_path):
    plugin = sysmon()  # one module, two bots

    async def go():
        one = await Harness(tmp_path / "one", [plugin], TEAM).start()
        two = await Harness(tmp_path / "two", [plugin], TEAM).start()
        try:
            assert await one.send("admin1", "interval:30") == ["interval set to 30s"]
            (status_one,) = await one.send("user1", "status")
            (status_two,) = await two.send("user1", "status")
            assert status_one.endswith("interval 30s")
            assert status_two.endswith("interval 60s")
        finally:
            await one.stop()
            await two.stop()

    run(go())


def test_interval_survives_a_restart(tmp_path):
    async def go():
        bot = await Harness(tmp_path, [sysmon()], TEAM).start()
        assert await bot.send("admin1", "interval:45") == ["interval set to 45s"]
        bot = await bot.restart()
        try:
            (status,) = await bot.send("user1", "status")
            assert status.endswith("interval 45s")
        finally:
            await bot.stop()

    run(go())


class Stateful:
    __name__ = "stateful"

    def __init__(self) -> None:
        self.bots: list = []

    @hookimpl
    def lcbot_startup(self, bot):
        self.bots.append(bot)

    @hookimpl
    def register_commands(self, registry):
        @registry.command("who")
        def who(ctx):
            return f"{ctx.bot.plugin} of {ctx.bot.name}"


def test_bot_is_per_plugin_and_state_holds_json_copies(tmp_path):
    plugin = Stateful()

    async def go():
        async with running_bot(tmp_path, plugin, users=TEAM) as bot:
            (mine,) = plugin.bots
            assert mine is bot.app.bot("stateful") and mine.plugin == "stateful"
            assert await bot.send("user1", "who") == ["stateful of lcbot"]
            value = {"seen": [1, 2]}
            mine.state["v"] = value
            value["seen"].append(3)  # stored was a copy
            assert mine.state["v"] == {"seen": [1, 2]}
            with pytest.raises(TypeError):
                mine.state["bad"] = object()
            assert "bad" not in mine.state
            assert bot.app.bot("other").state.get("v") is None  # another plugin's store
            with pytest.raises(ValueError, match="no user named"):
                mine.send("nobody", "hi")
            mine.send("admin1", "hello from a plugin")
            await bot.settle()
            assert bot.lines("admin1")[-1] == "hello from a plugin"
            names = [c.name for c in mine.commands(bot.app.roster.directory.by_name("user1"))]
            assert "who" in names and "quit" not in names
        async with running_bot(tmp_path, plugin, users=TEAM):
            assert plugin.bots[-1].state["v"] == {"seen": [1, 2]}  # kept in the database

    run(go())


def test_every_with_the_same_name_replaces_the_job(tmp_path):
    ticks: list[str] = []

    class Ticker:
        __name__ = "ticker"

        @hookimpl
        def lcbot_startup(self, bot):
            bot.every(3600, lambda: ticks.append("slow"), name="tick")
            bot.every(0.05, lambda: ticks.append("fast"), name="tick")  # replaces it

    async def go():
        async with running_bot(tmp_path, Ticker(), users=TEAM):
            for _ in range(100):
                if len(ticks) >= 3:
                    break
                await asyncio.sleep(0.02)
        assert ticks[:3] == ["fast"] * 3

    run(go())


# --- plugin configuration -----------------------------------------------------------------------


class Configured:
    __name__ = "weather"

    @hookimpl
    def config_schema(self):
        return [
            Setting("city", str, "Paris", "the city"),
            Setting("every", int, 600, "seconds between checks", min=60),
        ]

    @hookimpl
    def register_commands(self, registry):
        registry.command("weather")(
            lambda ctx: f"{ctx.bot.config['city']} {ctx.bot.config['every']}"
        )


def test_plugin_schema_fills_defaults_and_checks_values(tmp_path, caplog):
    async def go():
        async with running_bot(tmp_path / "a", Configured(), users=TEAM) as bot:
            assert await bot.send("user1", "weather") == ["Paris 600"]
        config = {"weather": {"city": "Lyon", "colour": "blue"}}
        with caplog.at_level(logging.WARNING):
            async with running_bot(tmp_path / "b", Configured(), users=TEAM, config=config) as bot:
                assert await bot.send("user1", "weather") == ["Lyon 600"]
        assert "unknown key weather.colour" in caplog.text

    run(go())
    with pytest.raises(ConfigError, match=r"weather\.every: expected integer ≥ 60, got 5"):
        Harness(tmp_path / "c", [Configured()], TEAM, {"weather": {"every": 5}})


FOLDER_WEATHER = """\
from lcbot import Setting, hookimpl


@hookimpl
def config_schema():
    return [Setting("every", int, 600, "seconds between checks", min=60)]
"""


def test_config_check_and_run_refuse_a_bad_plugin_section(tmp_path):
    project = make_project(
        tmp_path / "bot",
        extra="[weather]\nevery = 5\nshade = 1\n",
        plugins={"weather": FOLDER_WEATHER},
    )
    check = lcbot(project, "config", "check")
    assert check.returncode == 2, check.stdout + check.stderr
    assert "weather.every: expected integer ≥ 60, got 5" in check.stderr
    assert "Traceback" not in check.stderr
    ran = lcbot(project, "run", "--transport", "console")
    assert ran.returncode == 2 and "weather.every" in ran.stderr and "Traceback" not in ran.stderr
    (project / "lcbot.toml").write_text((project / "lcbot.toml").read_text().replace("= 5", "= 60"))
    check = lcbot(project, "config", "check")
    assert check.returncode == 0, check.stderr
    assert "unknown key weather.shade" in check.stdout


def test_lcbot_startup_may_not_take_the_old_app_argument(tmp_path):
    """The plugin API changed once: hooks get ``bot``; an ``app`` argument fails to load."""
    old_style = make_project(
        tmp_path / "bot",
        plugins={
            "old": "from lcbot import hookimpl\n\n@hookimpl\ndef lcbot_startup(app):\n    pass\n"
        },
    )
    listed = lcbot(old_style, "plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"status": "failed"' in listed.stdout and "app" in listed.stdout
    assert Path(old_style / "lcbot.toml").exists()


class Vote:
    """An on_alert implementation returning ``answer`` (False suppresses)."""

    def __init__(self, name: str, answer, calls: list[str]) -> None:
        self.__name__ = name

        @hookimpl
        def on_alert(alert):
            calls.append(name)
            return answer

        self.on_alert = on_alert


class Watcher:
    """A wrapper around on_alert: it sees the other implementations' results."""

    __name__ = "watcher"

    def __init__(self) -> None:
        self.seen: list[list] = []

    @hookimpl(wrapper=True)
    def on_alert(self, alert):
        results = yield
        self.seen.append(list(results))
        return results


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain hooks", "with a wrapper"])
@pytest.mark.parametrize(
    ("answers", "passed"),
    [((None, None), True), ((None, False), False), ((False, None), False), ((0, True), False)],
)
def test_on_alert_answers_what_pluggy_answers_with_or_without_a_wrapper(answers, passed, wrapped):
    """Plain hooks are called without pluggy's machinery: same order, every hook called, the
    same answer (a result equal to False suppresses) as through pluggy with a wrapper."""
    calls: list[str] = []
    host = PluginHost()
    for i, answer in enumerate(answers):
        host.register(Vote(f"v{i}", answer, calls), f"v{i}")
    watcher = Watcher()
    if wrapped:
        host.register(watcher, "watcher")
    assert host.on_alert(make_alert("x", "warning")) is passed
    assert calls == ["v1", "v0"]  # the last registered first, as pluggy calls them
    if wrapped:
        assert watcher.seen == [[a for a in reversed(answers) if a is not None]]
