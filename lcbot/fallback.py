"""Fallback channel: when the chat transport has been down for ``[alerts] fallback_after``
seconds, critical alerts waiting in the outbox are also sent to ``[alerts] fallback_urls``
through apprise (optional extra ``lcbot[apprise]``: WeCom bots, e-mail, …). Each alert
message goes to the fallback once; the chat copy is still delivered when the transport
is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lcbot.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from lcbot.app import App

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
    CHECK = 1.0  # seconds between checks

    def __init__(
        self, app: App, notifier: Any, after: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.notifier = notifier
        self.after = after
        self.clock = clock
        self.down_since: float | None = clock()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.CHECK)
            await self.check()

    async def check(self) -> int:
        """Send waiting critical alerts if the transport is down long enough; returns count."""
        now = self.clock()
        if self.app.transport.ready:
            self.down_since = None
            return 0
        if self.down_since is None:
            self.down_since = now
        if now - self.down_since < self.after:
            return 0
        db = self.app.outbox.db
        assert db is not None
        rows = db.execute(
            "SELECT id, recipient, text FROM outbox WHERE state = 'pending' "
            "AND kind = 'alert:critical' AND fallback_at IS NULL ORDER BY id"
        ).fetchall()
        texts: dict[str, list[int]] = {}
        for id_, _, text in rows:  # one notification per distinct alert text
            texts.setdefault(text, []).append(id_)
        sent = 0
        for text, ids in texts.items():
            ok = await asyncio.to_thread(
                self.notifier.notify, title=f"{self.app.config.bot.name}: critical alert", body=text
            )
            if not ok:
                log.warning("fallback notification failed; will retry")
                break
            sent += 1
            stamp = time.time()
            for id_ in ids:
                self.app.outbox.defer(
                    "UPDATE outbox SET fallback_at = ? WHERE id = ?", (stamp, id_)
                )
        if sent:
            log.warning(
                "transport down for %.0f s: %d critical alert(s) sent to the fallback",
                now - self.down_since,
                sent,
            )
        return sent
