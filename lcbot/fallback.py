"""Fallback channel: when the chat transport has been down for ``[alerts] fallback_after``
seconds, critical alerts waiting in the outbox are also sent to ``[alerts] fallback_urls``
through apprise (optional extra ``lcbot[apprise]``: WeCom bots, e-mail, …). Each alert
message goes to the fallback once; the chat copy is still delivered when the transport
is back. While the transport waits for a login scan that long, the login link is sent
there too (once per down period: a puppet issues a new code every few minutes), so root can
log the bot back in from anywhere. With a gated transport (iLink's reply window), critical
alerts held for their recipient (``lcbot.holds``) longer than ``fallback_after`` — counted
from the hold's start or the row's creation, whichever is later — go there too, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from lcbot.asyncutil import background
from lcbot.db import outbox as sql
from lcbot.errors import ConfigError

log = logging.getLogger("lcbot.fallback")


def load_apprise(urls: tuple[str, ...], where: str) -> Any:
    """An apprise.Apprise with ``urls``; ConfigError if apprise is missing or a URL is bad."""
    try:
        import apprise
    except ImportError:
        raise ConfigError(
            f"{where}: alerts.fallback_urls needs the apprise extra: pip install 'lcbot[apprise]'"
        ) from None
    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            raise ConfigError(f"{where}: alerts.fallback_urls: apprise cannot use {url!r}")
    return notifier


class Fallback:
    """Watches the transport; sends waiting critical alerts through apprise while it is down."""

    CHECK = 1.0  # seconds between checks

    def __init__(
        self,
        notifier: Any,
        after: float,
        ready: Callable[[], bool],
        waiting: Callable[[], list[tuple[int, str]]],
        record: Callable[..., None],
        title: str,
        clock: Callable[[], float] = time.monotonic,
        login_link: Callable[[], str | None] = lambda: None,
        login_title: str = "lcbot: WeChat login",
        held: Callable[[float], list[tuple[int, str]]] | None = None,
    ) -> None:
        self.notifier = notifier
        self.after = after
        self.ready = ready  # whether the chat transport can send
        self.waiting = waiting  # (id, text) of critical alerts not yet sent to the fallback
        self.record = record  # the outbox's record(op, *args)
        self.title = title
        self.clock = clock
        self.down_since: float | None = clock()
        self.done: set[int] = set()  # sent to the fallback (the mark may not be stored yet)
        self.login_link = login_link  # the WeChat login link while one is waiting for a scan
        self.link_sent: str | None = None
        self.login_title = login_title
        self.held = held  # (id, text) of held critical alerts waiting since before a time

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.CHECK)
            await self.check()

    def running(self) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
        return background(self.run(), "lcbot-fallback")

    async def check(self) -> int:
        """Send waiting critical alerts if the transport is down long enough; returns count."""
        now = self.clock()
        if self.ready():
            self.down_since = None
            self.link_sent = None
            if self.held is None:
                return 0
            sent = await self._send(self.held(time.time() - self.after))
            if sent:
                log.warning(
                    "held for their recipient over %g s: %d critical alert(s) sent to the fallback",
                    self.after,
                    sent,
                )
            return sent
        if self.down_since is None:
            self.down_since = now
        if now - self.down_since < self.after:
            return 0
        await self._send_login_link(now - self.down_since)
        sent = await self._send(self.waiting())
        if sent:
            log.warning(
                "transport down for %.0f s: %d critical alert(s) sent to the fallback",
                now - self.down_since,
                sent,
            )
        return sent

    async def _send(self, rows: list[tuple[int, str]]) -> int:
        """One notification per distinct alert text not sent yet; marks them. Returns sends."""
        texts: dict[str, list[int]] = {}
        for id_, text in rows:
            if id_ not in self.done:
                texts.setdefault(text, []).append(id_)
        sent = 0
        for text, ids in texts.items():
            ok = await asyncio.to_thread(self.notifier.notify, title=self.title, body=text)
            if not ok:
                log.warning("fallback notification failed; will retry")
                break
            sent += 1
            self.done.update(ids)
            self.record(sql.mark_fallback, ids, time.time())
        return sent

    async def _send_login_link(self, down_for: float) -> None:
        link = self.login_link()
        if not link or self.link_sent:
            return
        body = f"logged out of WeChat for {down_for:.0f} s: scan {link} to log the bot back in"
        ok = await asyncio.to_thread(self.notifier.notify, title=self.login_title, body=body)
        if ok:
            self.link_sent = link
            log.warning("the WeChat login link was sent to the fallback")


def fallback_for(
    settings: Any, db: Any, record: Callable[..., None], transport: Any, name: str, where: Any
) -> Fallback | None:
    """The bot's fallback channel from ``[alerts]``, or None without ``fallback_urls``."""
    if not settings.fallback_urls:
        return None
    notifier = load_apprise(settings.fallback_urls, str(where))

    def waiting() -> list[tuple[int, str]]:
        assert db.conn is not None
        return sql.pending_critical(db.conn)

    def held(before: float) -> list[tuple[int, str]]:
        assert db.conn is not None
        return sql.held_critical(db.conn, before)

    return Fallback(
        notifier,
        settings.fallback_after,
        ready=lambda: transport.ready,
        waiting=waiting,
        record=record,
        title=f"{name}: critical alert",
        login_link=lambda: (transport.status().get("login") or {}).get("url"),
        login_title=f"{name}: WeChat login",
        held=held if getattr(transport, "gated", False) else None,
    )
