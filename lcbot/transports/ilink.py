"""The official WeChat transport: the ClawBot channel (iLink bot API) over aiohttp.

Each lcbot user links their own WeChat by scanning a QR code (``lcbot user link alice``,
or ``link alice`` in chat); the link (``lcbot.ilink.store``) holds that bot's token. The
transport runs one long poll per link (``ilink_poll``) on one ``aiohttp.ClientSession``,
picks up new links and unlinks within a second, and keeps each link's state in its state
file (``ilink_state``). It is *gated*: WeChat takes messages to a user only for a while
after the user's last message, a few per message, and rate-limits; ``hold()`` and
``allowance()`` tell the drainer so (``ilink_window``), and ``send`` raises ``Deferred``
when WeChat refuses for now. ``LCBOT_ILINK_BACKOFF`` (seconds) overrides the first
rate-limit back-off (30 s) — for tests only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcbot.ilink.api import DEFAULT_BASE_URL, DEFAULT_CDN_BASE_URL, ILinkAPI, ILinkError
from lcbot.ilink.store import Link, LinkStore
from lcbot.transports.base import (
    Address,
    Deferred,
    Hold,
    Incoming,
    OnMessage,
    Transport,
    Undeliverable,
)
from lcbot.transports.ilink_chatlink import ChatLinks
from lcbot.transports.ilink_poll import Poller
from lcbot.transports.ilink_state import load_state
from lcbot.transports.ilink_window import BACKOFF_BASE, NUDGE_TEXT, Rules

log = logging.getLogger("lcbot.ilink")

WATCH = 1.0  # seconds between looks at the link files (and at nudges)
BACKOFF_ENV = "LCBOT_ILINK_BACKOFF"
NO_LINKS = "ilink: no linked users: run `lcbot user link NAME`"


@dataclass(frozen=True)
class IlinkSettings:
    """``[ilink]`` of lcbot.toml."""

    base_url: str = DEFAULT_BASE_URL
    cdn_base_url: str = DEFAULT_CDN_BASE_URL
    rules: Rules = field(default_factory=Rules)

    @property
    def fixed_base(self) -> bool:
        """A base URL other than the official one (a proxy, a test server) is used for
        every link; with the official one, a link uses the host its scan returned."""
        return self.base_url != DEFAULT_BASE_URL.rstrip("/")

    @classmethod
    def from_settings(cls, ilink: dict[str, Any]) -> IlinkSettings:
        base = BACKOFF_BASE
        with contextlib.suppress(KeyError, ValueError):
            base = max(0.1, float(os.environ[BACKOFF_ENV]))
        return cls(
            base_url=ilink["base_url"].rstrip("/"),
            cdn_base_url=ilink["cdn_base_url"].rstrip("/"),
            rules=Rules(
                window=ilink["window"],
                max_replies=ilink["max_replies"],
                nudge=ilink["nudge"],
                backoff_base=base,
            ),
        )


class IlinkTransport(Transport):
    name = "ilink"
    identity = "ilink"
    paced = True
    gated = True

    def __init__(self, settings: IlinkSettings, data_dir: Path) -> None:
        super().__init__()
        self.settings = settings
        self.rules = settings.rules
        self.data_dir = data_dir
        self.store = LinkStore(data_dir)
        self.pollers: dict[str, Poller] = {}  # user → the poll of their link
        self.session: Any = None  # aiohttp.ClientSession, made in start
        self._on_message: OnMessage | None = None
        self._stamp: Any = None
        self._watch_task: asyncio.Task[None] | None = None
        self._said_no_links = False
        self.linking: ChatLinks | None = None

    def chat_links(self, bind: Any) -> ChatLinks:
        """``link NAME`` from chat; ``bind(user, ilink_user_id)`` records the link in
        lcbot.toml (set by the app)."""
        self.linking = ChatLinks(lambda base: self.api(base), self.store, bind)
        return self.linking

    # --- links ---------------------------------------------------------------------------

    async def start(self, on_message: OnMessage) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession()
        self._on_message = on_message
        await self._sync()
        self._watch_task = asyncio.create_task(self._watch(), name="lcbot-ilink-links")

    def api(self, base_url: str | None = None, token: str | None = None) -> ILinkAPI:
        """A client on the transport's session (``base_url`` default: ``[ilink] base_url``)."""
        return ILinkAPI(
            self.session, base_url or self.settings.base_url, token, self.settings.cdn_base_url
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH)
            try:
                await self._sync()
                self._nudge()
            except Exception:  # an unreadable folder, …: keep the current links
                log.exception("ilink: could not look at the links")

    async def _sync(self) -> None:
        """Start a poll per new (or newly scanned) link, stop those of removed links."""
        stamp = self.store.stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        links = {link.user: link for link in self.store.all()}
        for user in list(self.pollers):
            old = self.pollers[user]
            new = links.get(user)
            if new is None or (new.bot_id, new.bot_token) != (old.link.bot_id, old.link.bot_token):
                del self.pollers[user]
                await old.stop()
                if new is None:
                    log.warning("ilink: %s was unlinked", user)
        for user, link in links.items():
            if user not in self.pollers:
                self._add(link)
        if not links and not self._said_no_links:
            log.warning(NO_LINKS)
        self._said_no_links = not links
        self.polling_changed()

    def _add(self, link: Link) -> None:
        state = load_state(self.data_dir, link.user, link.bot_id)
        poller = self.pollers[link.user] = Poller(
            link, state, self.api(self._base_for(link), link.bot_token), self.data_dir
        )
        if state.window.expired:
            user = link.user
            log.warning("ilink: the link of %s has expired: run `lcbot user link %s`", user, user)
            return
        log.info("ilink: polling for %s", link.user)
        poller.start(self)
        self.wake()  # a new link may lift a hold

    def _base_for(self, link: Link) -> str | None:
        return None if self.settings.fixed_base else (link.base_url or None)

    # --- what the polls tell (ilink_poll.Owner) ------------------------------------------

    async def handle(self, incoming: Incoming) -> None:
        if self._on_message is not None:
            await self._on_message(incoming)

    def polling_changed(self) -> None:
        self.set_ready(any(p.ok for p in self.pollers.values()))

    def wrote(self, poller: Poller) -> None:
        self.wake()

    def expired(self, poller: Poller) -> None:
        """``errcode -14``: the link needs a new scan; root is told once per expiry."""
        if poller.window.session_expired():
            user = poller.user
            log.warning("ilink: the session of %s expired: run `lcbot user link %s`", user, user)
            poller.save()
            self._notify(
                None,
                f"WeChat ended the link of {user} (session expired): messages to {user} "
                f"wait until it is renewed: run `lcbot user link {user}` (or send link {user})",
            )

    def _notify(self, user: str | None, text: str) -> None:
        if self.notify is not None:
            try:
                self.notify(user, text)
            except Exception:
                log.exception("ilink: could not queue a notice")

    def _nudge(self) -> None:
        """``[ilink] nudge``: ask a user for a word before their window closes (once per
        message from them)."""
        if self.rules.nudge is None:
            return
        now = time.time()
        for poller in self.pollers.values():
            if poller.window.wants_nudge(now, self.rules):
                poller.window.nudged = True
                poller.save()
                self._notify(poller.user, NUDGE_TEXT)

    # --- what goes out -------------------------------------------------------------------

    def _poller(self, address: Address) -> Poller | None:
        if address.kind != "contact":
            return None
        for poller in self.pollers.values():
            if poller.link.ilink_user_id == address.id:
                return poller
        return self.pollers.get(address.label)

    def hold(self, address: Address) -> Hold | None:
        poller = self._poller(address)
        if poller is None:
            return None  # send says why it cannot be delivered
        now = time.time()
        held = poller.window.hold(poller.user, now, self.rules)
        if held is None:
            return None
        reason, until = held
        return Hold(reason, None if until is None else time.monotonic() + (until - now))

    def allowance(self, address: Address) -> int | None:
        poller = self._poller(address)
        if poller is None:
            return None
        return poller.window.allowance(time.time(), self.rules)

    def _target(self, address: Address) -> Poller:
        if address.kind == "room":
            raise Undeliverable("the ilink transport has no group chats")
        poller = self._poller(address)
        if poller is None:
            raise Undeliverable(
                f"{address.label} has no WeChat link: run `lcbot user link {address.label}`"
            )
        held = poller.window.hold(poller.user, time.time(), self.rules)
        if held is not None:
            raise Deferred(held[0])
        return poller

    async def send(self, address: Address, text: str) -> None:
        poller = self._target(address)
        token = poller.window.context_token or ""
        await self._sending(poller, poller.api.send_text(poller.link.ilink_user_id, token, text))

    async def send_file(self, address: Address, path: Path, name: str) -> None:
        poller = self._target(address)
        token = poller.window.context_token or ""
        to = poller.link.ilink_user_id
        await self._sending(poller, poller.api.send_file(to, token, path, name))

    async def _sending(self, poller: Poller, sending: Any) -> None:
        """Await a send; WeChat's refusals for now become ``Deferred`` (no attempt)."""
        now = time.time()
        window = poller.window
        try:
            await sending
        except ILinkError as exc:
            if exc.session_expired:
                self.expired(poller)
                await poller.stop()
                raise Deferred(f"link expired: run `lcbot user link {poller.user}`") from None
            if exc.rate_limited:
                wait = window.rate_limited(now, self.rules)
                poller.save()
                log.warning(
                    "ilink: WeChat rate-limits sends to %s: waiting %.0f s", poller.user, wait
                )
                raise Deferred(f"rate limited by WeChat ({exc})") from None
            if exc.refused:
                window.refused(now)
                poller.save()
                log.info(
                    "ilink: WeChat refused a send to %s (%s): waiting for them to write",
                    poller.user,
                    exc,
                )
                raise Deferred(f"WeChat refused: {exc}") from None
            raise
        window.sent(now, self.rules)
        poller.save()

    # --- observing -----------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        now = time.time()
        links: dict[str, Any] = {}
        for user, poller in sorted(self.pollers.items()):
            window = poller.window
            held = window.hold(user, now, self.rules)
            links[user] = {
                "linked": True,
                "polling": poller.ok,
                "reason": poller.reason,
                "last_inbound": window.last_inbound,
                "window": window.state(now, self.rules),
                "held": held[0] if held else None,
                "backoff": round(window.backoff_left(now), 1),
            }
        return {"links": links, "reason": None if self.pollers else NO_LINKS}

    async def stop(self) -> None:
        self.set_ready(False)
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
        for poller in list(self.pollers.values()):
            await poller.stop()
        if self.linking is not None:
            await self.linking.stop()
        if self.session is not None:
            await self.session.close()
