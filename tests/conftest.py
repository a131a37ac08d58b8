"""Shared fixtures: a temporary lcbot.toml and the CLI through typer's runner (in-process).

Real ``python -m lcbot`` processes are started by ``tests.procs`` only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lcbot.cli import app
from tests import wechat_kit
from tests.wechat_kit import BOB, BOT, BOT_NAME, CAROL, DORA, ME, ROOM, SPOOF, STRANGER
from tests.wechaty_mock import WechatyMockServer

INGRESS_TOKEN_ENV = "LCBOT_INGRESS_TOKEN"
INGRESS_TOKEN = "s3cret-Token_42"

STARTER = """\
[bot]
name = "testbot"

[[users]]
name = "alice"
pri = "root"

[[users]]
name = "bob"
pri = "admin"

[plugins]
dirs = ["plugins"]
"""


@pytest.fixture
def cfg_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A valid lcbot.toml in a temp dir, which is also the working directory."""
    path = tmp_path / "lcbot.toml"
    path.write_text(STARTER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LCBOT_CONFIG", raising=False)
    return path


@pytest.fixture
def cli():
    """Run the CLI in-process: ``cli("user", "list")`` → click Result (stdout, stderr split)."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture(autouse=True)
def no_ingress_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ingress or job token, no remote bot, unless a test asks for them (child processes
    inherit the choice)."""
    for name in (INGRESS_TOKEN_ENV, "LCBOT_JOB_TOKEN", "LCBOT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    """The ingress token, set in the environment."""
    monkeypatch.setenv(INGRESS_TOKEN_ENV, INGRESS_TOKEN)
    return INGRESS_TOKEN


# --- WeChat end-to-end (marker "wechat"): the module's test server and lcbot bots on it ---


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WechatyMockServer]:
    srv = WechatyMockServer(log_path=tmp_path_factory.mktemp("wechaty") / "server.log")
    srv.start()
    try:
        for contact, name in [
            (ME, "me"),
            (BOB, "bob"),
            (CAROL, "carol"),
            (SPOOF, "bob"),
            (STRANGER, "Stranger"),
            (DORA, "Dora"),
        ]:
            srv.add_contact(contact, name)
        srv.login(BOT, BOT_NAME)
        srv.add_room(ROOM, "ops", [ME, BOB, CAROL, STRANGER, BOT])
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def wechat_bot(server: WechatyMockServer, tmp_path: Path):
    started: list[wechat_kit.WeChatBot] = []

    def start(project: Path, env: dict[str, str] | None = None) -> wechat_kit.WeChatBot:
        if not server.running:
            server.restart()
        if not server.health()["loggedIn"]:
            server.login(BOT, BOT_NAME)
        server.clear_sent()
        bot = wechat_kit.WeChatBot(project, server, env)
        started.append(bot)
        bot.wait_logged_in()
        return bot

    yield start
    for bot in started:
        bot.stop()
        bot.log.close()


@pytest.fixture
def wechaty_env(
    server: WechatyMockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> WechatyMockServer:
    """python-wechaty pointed at this module's ``server``, started from a clean state."""
    from tests.wechaty_bot import prepare

    return prepare(server, tmp_path, monkeypatch)
