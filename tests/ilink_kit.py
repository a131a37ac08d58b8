"""Helpers for end-to-end tests of ``lcbot run --transport ilink`` against the local iLink
test server (``tests.ilink_server``): projects with linked users, a running bot, waits."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from lcbot.ilink.api import DEFAULT_BASE_URL
from lcbot.ilink.store import Link, LinkStore, new_link
from tests.ilink_server import ILinkServer
from tests.procs import WAIT, make_project, spawn, wait_until

QUIET = "[ratelimit]\nper_second = 0\nper_minute = 0\nper_recipient_gap = 0\n"


def scan_link(srv: ILinkServer, data_dir: Path, user: str, wechat_user: str) -> Link:
    """Link ``user`` to ``wechat_user`` as a confirmed QR scan would, and save the link."""
    url = f"{srv.base_url}/ilink/bot/get_bot_qrcode?bot_type=3"
    with urllib.request.urlopen(url, timeout=10) as answer:
        code = json.loads(answer.read())["qrcode"]
    srv.scan(code, wechat_user)
    # the real service may answer its own host: the configured base_url must still win
    confirmed = {**srv.confirm(code), "baseurl": DEFAULT_BASE_URL}
    link = new_link(user, confirmed, srv.base_url)
    LinkStore(data_dir).save(link)
    return link


def ilink_project(
    folder: Path,
    srv: ILinkServer,
    users: dict[str, tuple[str, str | None]],
    extra: str = "",
    plugins: dict[str, str] | None = None,
    ilink: str = "",
    ratelimit: str = "",
) -> Path:
    """A project whose users (name → (pri, WeChat user or None)) are linked on ``srv``."""
    project = make_project(
        folder,
        {name: pri for name, (pri, _) in users.items()},
        extra=f'{QUIET}{ratelimit}\n[ilink]\nbase_url = "{srv.base_url}"\n'
        f'cdn_base_url = "{srv.cdn_base_url}"\n{ilink}\n{extra}',
        plugins=plugins,
    )
    toml = project / "lcbot.toml"
    for name, (_, wechat_user) in users.items():
        if wechat_user is None:
            continue
        link = scan_link(srv, project / ".lcbot", name, wechat_user)
        text = toml.read_text()
        entry = f'name = "{name}"\n'
        toml.write_text(text.replace(entry, f'{entry}ilink = "{link.ilink_user_id}"\n', 1))
    return project


class IlinkBot:
    """A running ``lcbot run --transport ilink`` (stderr kept in a file)."""

    def __init__(self, project: Path, transport: str | None = "ilink", **env: str) -> None:
        self.project = project
        self.path = project.parent / f"bot-{time.monotonic_ns()}.log"
        self.log = self.path.open("w")
        self.proc = spawn(
            project,
            "run",
            *(["--transport", transport] if transport else []),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def output(self) -> str:
        return self.path.read_text()

    def wait_for(self, text: str, timeout: float = WAIT) -> None:
        wait_until(lambda: text in self.output, f"{text!r} in the log:\n{self.output}", timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=WAIT)
        finally:
            self.log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=WAIT)
        self.log.close()


def texts(srv: ILinkServer, wechat_user: str) -> list[str]:
    """What ``wechat_user`` saw, one text per send."""
    return [s["text"] or "" for s in srv.sent(wechat_user)]


def wait_text(srv: ILinkServer, wechat_user: str, part: str, count: int = 1) -> list[str]:
    """Until ``count`` sends ``wechat_user`` saw hold ``part``; all their texts."""

    def found() -> list[str] | None:
        seen = texts(srv, wechat_user)
        return seen if sum(part in t for t in seen) >= count else None

    return wait_until(found, f"{count}× {part!r} seen by {wechat_user}: {texts(srv, wechat_user)}")


def status_of(project: Path) -> dict[str, Any]:
    """``lcbot ilink status --json`` by user."""
    from tests.procs import lcbot_json

    return {row["user"]: row for row in lcbot_json(project, "ilink", "status")}
