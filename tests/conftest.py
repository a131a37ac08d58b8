"""Shared fixtures: a temporary lcbot.toml and the CLI through typer's runner (in-process).

Real ``python -m lcbot`` processes are started by ``tests.procs`` only."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lcbot.cli import app

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
    """No ingress token unless a test asks for one (child processes inherit the choice)."""
    monkeypatch.delenv(INGRESS_TOKEN_ENV, raising=False)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    """The ingress token, set in the environment."""
    monkeypatch.setenv(INGRESS_TOKEN_ENV, INGRESS_TOKEN)
    return INGRESS_TOKEN
