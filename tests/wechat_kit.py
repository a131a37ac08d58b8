"""Shared by the WeChat end-to-end tests: the module's test server, a project whose users
are bound to its contacts, and ``lcbot run --transport wechaty`` as a subprocess."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from tests.procs import make_project, spawn, wait_until
from tests.wechaty_mock import WechatyMockServer

WAIT = 30.0
BOT, BOT_NAME = "wxid_lcbot", "LcBot"
ME, BOB, CAROL = "wxid_me", "wxid_bob", "wxid_carol"
SPOOF, STRANGER, DORA = "wxid_spoof", "wxid_stranger", "wxid_dora"
ROOM = "4242@chatroom"
REPO = Path(__file__).resolve().parents[1]

CONFIG = """
[ratelimit]          # no pacing: the tests would wait 3 s per reply otherwise
per_second = 0
per_minute = 0
per_recipient_gap = 0

[wechaty]
rooms = "mention"
"""


def project_with_users(folder: Path, config: str = CONFIG) -> Path:
    """A project whose users me (root), bob (admin) and carol (user) are bound to the test
    server's contacts, with ``config`` (no pacing; group commands on) and the sysmon plugin."""
    project = make_project(folder, {"me": "root", "bob": "admin", "carol": "user"}, config)
    (project / "plugins" / "sysmon.py").write_text((REPO / "plugins" / "sysmon.py").read_text())
    toml = project / "lcbot.toml"
    text = toml.read_text()
    for name, wxid in (("me", ME), ("bob", BOB), ("carol", CAROL)):
        text = text.replace(f'name = "{name}"\n', f'name = "{name}"\nwxid = "{wxid}"\n', 1)
    toml.write_text(text)
    return project


class WeChatBot:
    """``lcbot run --transport wechaty`` as a subprocess, logged in to the test server."""

    def __init__(
        self, project: Path, server: WechatyMockServer, env: dict[str, str] | None = None
    ) -> None:
        self.server = server
        self.log = (project.parent / f"bot-{time.monotonic_ns()}.log").open("w+")
        self.proc = spawn(
            project,
            "run",
            "--transport",
            "wechaty",
            env={**server.env(), **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @property
    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_log(self, pattern: str, timeout: float = WAIT, count: int = 1) -> None:
        try:
            wait_until(
                lambda: (
                    (self.proc.poll() is None and len(re.findall(pattern, self.output)) >= count)
                    or self._died()
                ),
                f"{pattern!r} x{count} in the bot's log",
                timeout,
            )
        except AssertionError as exc:
            tail = "\n".join(self.output.splitlines()[-60:])
            raise AssertionError(f"{exc}; the bot's log ends:\n{tail}") from None

    def _died(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"bot exited {self.proc.returncode}:\n{self.output}")
        return False

    def wait_logged_in(self, count: int = 1) -> None:
        self.wait_log(r"logged in to WeChat as", count=count)
        self.server.wait_stream(WAIT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        return self.proc.returncode


def texts_to(server: WechatyMockServer, contact: str) -> list[str]:
    """Every line the bot sent to ``contact`` (coalesced messages split)."""
    sent = [m.get("text") or "" for m in server.sent() if m["to"] == contact]  # files: no text
    return [line for text in sent for line in text.split("\n")]


def wait_text(server: WechatyMockServer, contact: str, predicate, what: str) -> str:
    def found():
        return next((t for t in texts_to(server, contact) if predicate(t)), None)

    return wait_until(found, f"{what} sent to {contact}; sent: {server.sent()}", WAIT)
