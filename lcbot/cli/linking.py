"""``lcbot user link``: a user links their WeChat to lcbot by scanning an iLink QR code.

The QR code is shown like the Wechaty login's (terminal QR, its link, a 0600 PNG in the
data dir), each step of the flow is one line, a verify number is read from stdin. On
``confirmed`` the link (with its bot token) goes into ``<data_dir>/ilink/`` (0600) and the
user's ``ilink`` id into lcbot.toml — never the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from lcbot.errors import UsageError

if TYPE_CHECKING:
    from lcbot.config import Config
    from lcbot.ilink.linking import LinkEvent
    from lcbot.ilink.store import Link
    from lcbot.users import User


def configured_base_url(cfg: Config, option: str | None) -> str:
    """``--base-url``, else ``[ilink] base_url``, else the official service."""
    from lcbot.ilink.api import DEFAULT_BASE_URL

    value = option or (cfg.settings.get("ilink") or {}).get("base_url")
    if not value:
        raw = cfg.raw.get("ilink")
        value = raw.get("base_url") if isinstance(raw, dict) else None
    if not value:
        return DEFAULT_BASE_URL
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        what = "--base-url" if option else f"{cfg.path}: ilink.base_url"
        raise UsageError(f"{what} must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def qr_png(data_dir: Path, user: str) -> Path:
    from lcbot.ilink.store import file_stem

    return data_dir / f"ilink-qr-{file_stem(user)}.png"


def link_user(cfg: Config, user: User, base_url: str | None, timeout: float) -> Link:
    """Run the QR flow for ``user`` on the terminal and store the link; LinkFailed or
    UsageError when no link was made (nothing is changed then)."""
    from lcbot import config
    from lcbot.db import private_dir
    from lcbot.ilink.store import LinkStore
    from lcbot.users import set_ilink

    base = configured_base_url(cfg, base_url)
    data_dir = cfg.bot.data_dir
    try:
        private_dir(data_dir)
    except OSError as exc:
        raise UsageError(f"cannot create the data dir {data_dir}: {exc.strerror or exc}") from None
    png = qr_png(data_dir, user.name)
    view = TerminalView(user.name, png, sys.stdout)
    try:
        link = asyncio.run(_flow(base, user.name, view, timeout))
    finally:
        png.unlink(missing_ok=True)
    with config.edit(cfg.path) as raw:  # refuses an id of another user before any write
        set_ilink(raw, user.name, link.ilink_user_id)
        LinkStore(data_dir).save(link)
    return link


async def _flow(base: str, user: str, view: TerminalView, timeout: float) -> Link:
    import aiohttp

    from lcbot.ilink.api import ILinkAPI
    from lcbot.ilink.linking import link

    async with aiohttp.ClientSession() as session:
        return await link(
            lambda url: ILinkAPI(session, url or base), user, view.on_event, timeout=timeout
        )


class TerminalView:
    """The flow's events on a terminal: a QR block per code, one line per step."""

    def __init__(self, user: str, png: Path, out: TextIO) -> None:
        self.user = user
        self.png = png
        self.out = out

    async def on_event(self, event: LinkEvent) -> str | None:
        from lcbot.ilink import linking

        if event.kind == linking.QRCODE:
            self.show(event)
        elif event.kind == linking.VERIFY:
            self.write(f"{event.message}: ", newline=False)
            return await read_line()
        else:
            self.write(event.message)
        return None

    def show(self, event: LinkEvent) -> None:
        from lcbot.qr import save_png, terminal_block

        url = event.url or ""
        try:
            save_png(url, self.png)
            png = f"or open {self.png}"
        except (OSError, ValueError) as exc:
            png = f"(no PNG: {exc})"
        self.write(
            f"\nScan with WeChat to link {self.user} to lcbot "
            f"(QR code {event.number} of {event.codes}):\n{terminal_block(url)}\n{url}\n{png}\n"
        )

    def write(self, text: str, newline: bool = True) -> None:
        self.out.write(text + ("\n" if newline else ""))
        self.out.flush()


async def read_line() -> str | None:
    """One line of stdin (None at its end), read in a daemon thread: a flow that times out
    meanwhile does not wait for the terminal."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str | None] = loop.create_future()

    def read() -> None:
        line = sys.stdin.readline()
        value = line.strip() if line else None
        with contextlib.suppress(RuntimeError):  # the loop has ended meanwhile
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(value))

    threading.Thread(target=read, name="lcbot-verify-code", daemon=True).start()
    return await done
