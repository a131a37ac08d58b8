"""Shared fixtures: a temporary lcbot.toml, the CLI through typer's runner and as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lcbot.cli import app

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


def run_lcbot(*args: str, cwd: Path | None = None, env: dict | None = None, **kw):
    """Run ``python -m lcbot`` as a real subprocess with this interpreter."""
    full_env = {k: v for k, v in os.environ.items() if k != "LCBOT_CONFIG"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "lcbot", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=kw.pop("timeout", 60),
        **kw,
    )
