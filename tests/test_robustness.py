"""Regression tests for robustness bugs found in review: bad text, odd handlers, hooks that
misbehave, shutdown with work in flight, config edits seen by a running bot, two bots on
one data dir, and bad CLI input (exit code 2 and an ``error:`` line, never a traceback).

In-process bots (``lcbot.testing``) where possible; real ``python -m lcbot`` processes for
exit codes. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from lcbot import CmdType, Pri, hookimpl, pairing
from lcbot.db import DB_NAME, connect
from lcbot.drainer import Pacing
from lcbot.errors import ConfigError
from lcbot.schema import SCHEMA
from lcbot.testing import Harness
from lcbot.transports.base import Incoming
from tests.engine import running_bot
from tests.procs import bots, lcbot, make_project, with_path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

STEP = 5.0  # seconds: the most one in-process step may take here
LATIN1_NAME = "r\udce9sum\udce9.txt"  # os.listdir() of the Latin-1 bytes b"r\xe9sum\xe9.txt"


def run(coro):
    return asyncio.run(coro)


async def ask(bot, sender: str, text: str, timeout: float = STEP) -> list[str]:
    """Like ``Bot.send`` with a short bound: what reached ``sender`` because of ``text``."""
    before = len(bot.transport.sent)
    try:
        await asyncio.wait_for(bot.transport.inject(sender, text), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"{text!r} from {sender} not handled within {timeout}s") from None
    assert await bot.app.drain(timeout), f"replies to {text!r} not sent within {timeout}s"
    return [t for r, t in bot.transport.sent[before:] if r == sender]


def assert_clean_usage_error(rc: int, err: str) -> None:
    """Exit code 2, an ``error:`` line (click's own ``Error:`` for bad option values), no
    traceback."""
    assert "Traceback" not in err, err
    assert rc == 2, f"exit code {rc}; stderr: {err}"
    assert re.search(r"^error: \S", err, re.M | re.I), err


async def await_for(condition, what: str, timeout: float = STEP, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (value := await condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(every)
    return value


# --- 1. text that is not valid Unicode ----------------------------------------------------


class Listing:
    __name__ = "listing"

    @hookimpl
    def register_commands(self, registry):
        @registry.command("ls")
        def ls(ctx):
            ctx.reply(f"first: {LATIN1_NAME}")
            return LATIN1_NAME


def test_lone_surrogate_reply_is_replaced_and_does_not_block(tmp_path):
    async def go():
        async with running_bot(tmp_path, Listing()) as bot:
            replies = await ask(bot, "user1", "ls")  # one coalesced message or two
            lines = [line for text in replies for line in text.split("\n")]
            assert lines == ["first: r\ufffdsum\ufffd.txt", "r\ufffdsum\ufffd.txt"], replies
            assert await ask(bot, "user1", "whoami") == ["user1 (user)"]
            assert await ask(bot, "admin1", "whoami") == ["admin1 (admin)"]

    run(go())


def test_console_line_with_invalid_byte(tmp_path):
    project = make_project(tmp_path / "bot")
    rc, out, err = lcbot(project, "run", "--transport", "console", input=b"whoami\n\xff\nwhoami\n")
    assert "Traceback" not in err, err
    assert rc == 0, err
    assert out.splitlines().count("me (root)") == 2, out


# --- 2-4. handlers that fail in unusual ways ------------------------------------------------


async def _upstream_down():
    raise RuntimeError("upstream down")


class Odd:
    __name__ = "odd"

    @hookimpl
    def register_commands(self, registry):
        @registry.command("fetch")
        def fetch(ctx):  # a plain def returning a coroutine that raises
            return _upstream_down()

        @registry.command("empty")
        def empty(ctx):
            return next(iter([]))  # StopIteration

        @registry.command("pick", kind=CmdType.SET)
        def pick(ctx):
            return next(iter([]))

        @registry.command("bye")
        async def bye(ctx):
            sys.exit(3)


def test_plain_def_returning_failing_coroutine(tmp_path):
    async def go():
        async with running_bot(tmp_path, Odd()) as bot:
            assert await ask(bot, "user1", "fetch") == ["fetch failed: upstream down"]
            assert await ask(bot, "user1", "whoami") == ["user1 (user)"]

    run(go())


def test_stop_iteration_from_sync_handler(tmp_path):
    async def go():
        async with running_bot(tmp_path, Odd()) as bot:
            for _ in range(2):
                (reply,) = await ask(bot, "user1", "empty")
                assert reply.startswith("empty failed: "), reply
                (reply,) = await ask(bot, "user1", "pick 1")  # the SET lock is released
                assert reply.startswith("pick failed: "), reply
            assert await ask(bot, "user1", "whoami") == ["user1 (user)"]

    run(go())


def test_sys_exit_in_async_handler_in_process(tmp_path):
    async def go():
        async with running_bot(tmp_path, Odd()) as bot:
            assert await ask(bot, "user1", "bye") == ["bye failed: 3"]
            assert await ask(bot, "user1", "whoami") == ["user1 (user)"]

    try:
        run(go())
    except SystemExit as exc:
        pytest.fail(f"SystemExit({exc.code}) escaped the bot")


ODD_PLUGIN = """\
import sys

from lcbot import hookimpl


async def _upstream_down():
    raise RuntimeError("upstream down")


@hookimpl
def register_commands(registry):
    @registry.command("fetch")
    def fetch(ctx):
        return _upstream_down()

    @registry.command("bye")
    async def bye(ctx):
        sys.exit(3)
"""


@pytest.mark.parametrize(
    ("command", "answer"),
    [("fetch", "fetch failed: upstream down"), ("bye", "bye failed: 3")],
    ids=["coroutine-from-def", "sys-exit-in-async-def"],
)
def test_odd_handlers_in_lcbot(tmp_path, command, answer):
    project = make_project(tmp_path / "bot", plugins={"odd": ODD_PLUGIN})
    rc, out, err = lcbot(project, "run", "--transport", "console", input=f"{command}\nwhoami\n")
    assert out.splitlines() == [answer, "me (root)"], err[-2000:]
    assert rc == 0, err[-2000:]


# --- 5. on_alert hooks that set bad values --------------------------------------------------


class BadHook:
    __name__ = "badhook"

    def __init__(self, change):
        self.change = change

    @hookimpl
    def on_alert(self, alert):
        if "db" in alert.text:
            self.change(alert)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda a: setattr(a, "recipients", [None]), id="recipients-None"),
        pytest.param(lambda a: setattr(a, "level", 5), id="level-5"),
    ],
)
def test_bad_on_alert_values_do_not_lose_the_batch(tmp_path, change):
    async def go():
        async with running_bot(tmp_path, BadHook(change)) as bot:
            raising = bot.app.bot("test")
            bad = raising.alert("db down", level="critical")
            good = raising.alert("disk full", level="critical")  # same batch
            assert await bot.app.drain(STEP)
            states = {a.id: bot.outcome(a)["state"] for a in (bad, good)}
            assert states[good.id] == "delivered", states
            assert states[bad.id] in ("failed", "delivered"), states
            assert await bot.app.drain(STEP)
            for user in ("root1", "admin1", "user1"):
                assert "CRITICAL disk full" in bot.lines(user), bot.transport.sent

    run(go())


# --- 6. two bots on one data dir ------------------------------------------------------------


def test_second_bot_on_same_data_dir_exits_1(tmp_path):
    project = make_project(tmp_path / "bot")
    with bots() as start:
        first = start(project)
        first.send("whoami")
        first.expect("me (root)", timeout=10)
        second = start(project)
        assert second.wait(5) == 1, second.stderr
        err = second.stderr
        assert "Traceback" not in err, err
        assert re.search(r"another.*(data.?dir|\.lcbot)", err, re.I | re.S), err
        first.send("whoami")  # the first bot is unharmed
        first.expect("me (root)", timeout=10)
        first.end_input()
        assert first.wait(10) == 0, first.stderr


# --- 7. handlers still running when the bot stops ------------------------------------------


class Finishing:
    __name__ = "finishing"

    @hookimpl
    def register_commands(self, registry):
        @registry.command("slow")
        def slow(ctx):
            time.sleep(0.25)
            ctx.reply("half way")
            time.sleep(0.25)
            return "done"

        @registry.command("aslow")
        async def aslow(ctx):
            await asyncio.sleep(0.25)
            ctx.reply("half way")
            await asyncio.sleep(0.25)
            return "done"


@pytest.mark.parametrize("command", ["slow", "aslow"])
def test_stop_waits_for_running_handlers(tmp_path, command):
    bot = Harness(tmp_path, [Finishing()], users={"alice": "root"})
    app, transport = bot.app, bot.transport
    app.stop_timeout = 5

    async def go():
        async def stop_soon():
            await asyncio.sleep(0.1)
            app.request_stop()

        async def inject():
            while transport.on_message is None:
                await asyncio.sleep(0.005)
            await transport.inject("alice", command)

        asking = asyncio.create_task(inject())
        stopping = asyncio.create_task(stop_soon())
        started = time.monotonic()
        assert await asyncio.wait_for(app.run(), 10) == 0
        assert time.monotonic() - started < 5
        await asyncio.gather(asking, stopping, return_exceptions=True)

    run(go())
    lines = [line for r, t in transport.sent if r == "alice" for line in t.split("\n")]
    assert lines == ["half way", "done"], transport.sent
    with contextlib.closing(connect(tmp_path / "data" / DB_NAME)) as db:
        rows = db.execute("SELECT text, state FROM outbox ORDER BY id").fetchall()
    assert rows == [("half way", "sent"), ("done", "sent")], rows


# --- 8. app.every from a worker thread ------------------------------------------------------


class Scheduling:
    __name__ = "scheduling"

    def __init__(self):
        self.ticks = 0
        self.ticked = threading.Event()

    def tick(self):
        self.ticks += 1
        if self.ticks >= 2:
            self.ticked.set()

    @hookimpl
    def register_commands(self, registry):
        @registry.command("sched")
        def sched(ctx):  # plain def: runs in a worker thread
            job = ctx.bot.every(0.1, self.tick, name="ticker")
            return f"scheduled {job.name}"


def test_every_from_plain_def_handler(tmp_path):
    plugin = Scheduling()

    async def go():
        async with running_bot(tmp_path, plugin) as bot:
            assert await ask(bot, "user1", "sched") == ["scheduled ticker"]
            deadline = time.monotonic() + 3
            while not plugin.ticked.is_set():
                assert time.monotonic() < deadline, f"the job ran {plugin.ticks} time(s) in 3s"
                await asyncio.sleep(0.05)

    run(go())


# --- 9. pacing values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("per_second", 0.5),
        ("per_minute", 1.5),
        ("max_chars", 30.5),
        ("max_attempts", 2.5),
    ],
)
def test_pacing_counts_must_be_integers(key, value):
    with pytest.raises(ConfigError, match=key):
        SCHEMA["ratelimit"].load({key: value}, "lcbot.toml")


def test_pacing_gap_may_be_fractional():
    values = SCHEMA["ratelimit"].load({"per_recipient_gap": 1.5, "per_second": 2}, "lcbot.toml")
    pacing = Pacing.from_settings(values, paced=True)
    assert pacing.per_recipient_gap == 1.5 and pacing.per_second == 2


# --- 10. pairing codes of removed users -----------------------------------------------------


def test_code_of_removed_user_does_not_bind_a_new_namesake(tmp_path):
    project = make_project(tmp_path / "bot")
    path = project / "lcbot.toml"
    rc, out, err = lcbot(project, "user", "add", "alice", "--pri", "user")
    assert rc == 0, err
    code = re.search(r"single use\): (\S+)", out)[1]
    rc, _, err = lcbot(project, "user", "remove", "alice")
    assert rc == 0, err
    rc, _, err = lcbot(project, "user", "add", "Alice", "--pri", "admin", "--wxid", "wxid_real")
    assert rc == 0, err

    async def go():
        bot = await Harness(project, toml=path, identity="id").start()
        app, transport = bot.app, bot.transport
        try:
            await transport.on_message(Incoming("wxid_attacker", "Alice", f"bind {code}"))
            await transport.on_message(Incoming("wxid_attacker", "Alice", "whoami"))
            assert await app.drain(STEP)
        finally:
            await app.stop(STEP)
        return transport.sent

    sent = run(go())
    assert sent == [("contact:wxid_attacker", pairing.REFUSAL)], sent
    users = {u["name"]: u for u in tomllib.loads(path.read_text())["users"]}
    assert users["Alice"] == {"name": "Alice", "pri": "admin", "wxid": "wxid_real"}
    with contextlib.closing(connect(project / ".lcbot" / DB_NAME)) as db:
        assert pairing.redeem(db, code) is None


# --- 11. a running bot sees CLI edits of lcbot.toml -----------------------------------------


class AdminOnly:
    __name__ = "adminonly"

    @hookimpl
    def register_commands(self, registry):
        registry.command("deploy", pri=Pri.ADMIN)(lambda ctx: "deployed")


def test_running_bot_sees_user_edits(tmp_path):
    project = make_project(tmp_path / "bot", {"me": "root", "bob": "admin", "carol": "user"})
    path = project / "lcbot.toml"

    async def go():
        bot = await Harness(project, [AdminOnly()], toml=path).start()
        app = bot.app

        async def cli(*args):
            rc, _, err = await asyncio.to_thread(lcbot, project, "user", *args)
            assert rc == 0, err

        def reloaded(name, pri):
            async def check():
                user = app.roster.directory.by_name(name)
                return (user.pri.label if user else None) == pri

            return check

        async def answer(sender, text, want):
            async def check():
                return await ask(bot, sender, text) == want

            await await_for(check, f"{sender}: {text} → {want}", timeout=2.5, every=0.1)

        try:
            assert await ask(bot, "bob", "deploy") == ["deployed"]
            await cli("set-pri", "bob", "user")
            await answer("bob", "deploy", ["not allowed: deploy"])
            assert await ask(bot, "carol", "whoami") == ["carol (user)"]
            await cli("remove", "carol")
            # a whoami answered before the reload would be queued to a user who is gone
            await await_for(reloaded("carol", None), "carol gone from the roster", timeout=2.5)
            await answer("carol", "whoami", [])
            assert await ask(bot, "dave", "whoami") == []
            await cli("add", "dave", "--pri", "admin", "--wxid", "wxid_dave")
            await answer("dave", "deploy", ["deployed"])
        finally:
            await app.stop(STEP)

    run(go())


# --- 12. LCBOT_LOAD_PLUGINS= (empty) --------------------------------------------------------

FOLDER_PLUGIN = """\
from lcbot import hookimpl


@hookimpl
def register_commands(registry):
    registry.command("fromfolder")(lambda ctx: "folder plugin here")
"""


def test_empty_load_plugins_disables_only_installed_plugins(tmp_path):
    site = tmp_path / "site"
    (site / "epplug-1.0.dist-info").mkdir(parents=True)
    (site / "epplug-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: epplug\nVersion: 1.0\n"
    )
    (site / "epplug-1.0.dist-info" / "entry_points.txt").write_text("[lcbot]\nepplug = epplug\n")
    (site / "epplug.py").write_text(FOLDER_PLUGIN.replace("fromfolder", "fromentry"))
    project = make_project(tmp_path / "bot", plugins={"folderplug": FOLDER_PLUGIN})
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))

    def statuses(**env):
        rc, out, err = lcbot(project, "plugins", "list", "--json", PYTHONPATH=pythonpath, **env)
        assert rc == 0, err
        return {r["name"]: r["status"] for r in json.loads(out)}

    everything = statuses()
    assert everything["epplug"] == "ok" and everything["folderplug"] == "ok", everything
    none_installed = statuses(LCBOT_LOAD_PLUGINS="")
    assert none_installed["epplug"] == "disabled", none_installed
    assert none_installed["folderplug"] == "ok", none_installed


# --- 13. bad input: exit code 2, an error line, no traceback --------------------------------


def _project(tmp_path: Path, extra: str = "", data_dir: str = ".lcbot") -> Path:
    folder = make_project(tmp_path / "bot", {"me": "root"}, extra=extra)
    path = folder / "lcbot.toml"
    path.write_text(path.read_text().replace('data_dir = ".lcbot"', f'data_dir = "{data_dir}"'))
    return folder


def _with_db(folder: Path) -> Path:
    connect(folder / ".lcbot" / DB_NAME).close()
    return folder


def _file(folder: Path, name: str) -> Path:
    (folder / name).write_text("not a folder\n")
    return folder / name


BAD_INPUT = {
    "data_dir-is-a-file-alert": (
        lambda t: _project(t, data_dir="datafile"),
        lambda p: (_file(p, "datafile"), ["alert", "hi"])[1],
    ),
    "data_dir-is-a-file-user-add": (
        lambda t: _project(t, data_dir="datafile"),
        lambda p: (_file(p, "datafile"), ["user", "add", "bob", "--pri", "user"])[1],
    ),
    "alert-text-not-utf8": (_project, lambda p: ["alert", "\udcff"]),
    "user-name-not-utf8": (_project, lambda p: ["user", "add", "b\udcffob", "--pri", "user"]),
    "init-in-missing-folder": (
        _project,
        lambda p: ["init", "--config", str(p / "missing" / "lcbot.toml")],
    ),
    "fractional-max_chars": (
        lambda t: _project(t, extra="[ratelimit]\nmax_chars = 30.5\n"),
        lambda p: ["config", "check"],
    ),
    "outbox-list-huge-limit": (
        lambda t: _with_db(_project(t)),
        lambda p: ["outbox", "list", "-n", "99999999999999999999"],
    ),
    "alerts-recent-huge-limit": (
        lambda t: _with_db(_project(t)),
        lambda p: ["alerts", "recent", "-n", "99999999999999999999"],
    ),
    "ingress-port-not-ascii": (
        lambda t: _project(t, extra='[ingress]\nenabled = true\nlisten = "127.0.0.1:²"\n'),
        lambda p: ["config", "check"],
    ),
    "plugin-new-dir-is-a-file": (
        _project,
        lambda p: ["plugin", "new", "y", "--dir", str(_file(p, "afile"))],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_a_usage_error(tmp_path, case):
    setup, arguments = BAD_INPUT[case]
    project = setup(tmp_path)
    args = arguments(project)
    path = project / "lcbot.toml"
    before = path.read_bytes()
    rc, _, err = lcbot(project, *args)
    assert_clean_usage_error(rc, err)
    assert path.read_bytes() == before  # nothing half-done
    assert not (project / "missing").exists()


# --- 14. a symlinked lcbot.toml --------------------------------------------------------------


def test_user_add_through_symlinked_config(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "work").mkdir()
    real = tmp_path / "real" / "lcbot.toml"
    real.write_text('[bot]\ndata_dir = ".lcbot"\n\n[[users]]\nname = "me"\npri = "root"\n')
    link = tmp_path / "work" / "lcbot.toml"
    link.symlink_to(Path("..") / "real" / "lcbot.toml")
    rc, _, err = lcbot(tmp_path / "work", "user", "add", "bob", "--pri", "user")
    assert rc == 0, err
    assert link.is_symlink(), "the link was replaced by a regular file"
    assert os.readlink(link) == str(Path("..") / "real" / "lcbot.toml")
    names = [u["name"] for u in tomllib.loads(real.read_text())["users"]]
    assert names == ["me", "bob"]


# --- 15. an internal task failure is a failed run -------------------------------------------

BREAK_DRAINER = """\
# sitecustomize: runs at interpreter start in the child; breaks the drainer's send round
from lcbot.drainer import Drainer

original = Drainer.send_round


async def send_round(self):
    if AFTER_SEND:
        await original(self)
    raise RuntimeError("drainer broke")


Drainer.send_round = send_round
"""


@pytest.mark.parametrize("after_send", [True, False], ids=["after-send", "nothing-sent"])
def test_internal_task_failure_exits_1(tmp_path, after_send):
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(BREAK_DRAINER.replace("AFTER_SEND", str(after_send)))
    project = make_project(tmp_path / "bot")
    with bots() as start:
        bot = start(project, **with_path(inject))
        bot.send("whoami")  # the first send round breaks the drainer
        rc = bot.wait(10)
        assert rc == 1, f"exit code {rc}; stderr: {bot.stderr[-2000:]}"
        assert "drainer broke" in bot.stderr
