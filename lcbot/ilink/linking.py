"""Linking a user's WeChat to lcbot: the iLink QR flow, step by step, as events.

``link()`` asks for a QR code, reports it (``QRCODE``), then long-polls its status:
``wait`` (nothing), ``scaned`` (``SCANNED``, once per code), ``need_verifycode`` (``VERIFY``:
the callback answers with the number the phone shows; a wrong number asks again),
``expired`` and ``verify_code_blocked`` (a new code, at most ``max_codes`` in all),
``scaned_but_redirect`` (poll the given host from then on, with the configured scheme),
``binded_redirect`` (the account is linked already: ``LinkFailed``) and ``confirmed`` (the
Link). The CLI (``lcbot user link``) and the chat command ``link`` render the events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from lcbot.errors import LcbotError
from lcbot.ilink.errors import ILinkError
from lcbot.ilink.store import Link, new_link

log = logging.getLogger("lcbot.ilink")

MAX_CODES = 3  # QR codes shown at most (the first and two refreshes), as the reference client
TIMEOUT = 480.0  # seconds the whole flow may take
POLL_TIMEOUT = 35.0  # client-side limit of one status long-poll
PAUSE = 1.0  # seconds between two status polls that answered at once
MAX_ERRORS = 10  # failed status polls in a row before giving up

# event kinds
QRCODE = "qrcode"  # a code to show: ``url`` (what the QR code encodes), ``number`` of ``codes``
SCANNED = "scanned"
VERIFY = "verify_code"  # answer with the number; ``wrong`` when the last one did not match
EXPIRED = "expired"  # a new code follows
BLOCKED = "verify_code_blocked"  # too many wrong numbers: a new code follows
REDIRECT = "redirect"
RETRY = "retry"  # a status poll failed; polling goes on
CONFIRMED = "confirmed"


class LinkFailed(LcbotError):
    """The flow ended without a link (expired too often, timed out, already linked, …)."""


@dataclass(frozen=True)
class LinkEvent:
    kind: str
    message: str  # one line for people
    url: str | None = None
    number: int = 0  # which QR code (1-based)
    codes: int = MAX_CODES
    wrong: bool = False


class StatusAPI(Protocol):
    """What the flow uses of ``ILinkAPI``."""

    base_url: str

    async def get_bot_qrcode(self) -> dict[str, Any]: ...

    async def get_qrcode_status(
        self, qrcode: str, verify_code: str | None = None, timeout: float = 35.0
    ) -> dict[str, Any]: ...


OnEvent = Callable[[LinkEvent], Awaitable[str | None]]
ApiFactory = Callable[[str | None], StatusAPI]  # None: the configured base URL


async def link(
    api_factory: ApiFactory,
    user: str,
    on_event: OnEvent,
    *,
    timeout: float = TIMEOUT,
    max_codes: int = MAX_CODES,
    pause: float = PAUSE,
) -> Link:
    """Run the QR flow for ``user``; the confirmed Link (not saved yet) or LinkFailed."""
    flow = _Flow(api_factory, user, on_event, max_codes, pause)
    try:
        return await asyncio.wait_for(flow.run(), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        raise LinkFailed(
            f"no confirmed scan within {timeout:g} s; run the link again for a new QR code"
        ) from None


class _Flow:
    def __init__(
        self, factory: ApiFactory, user: str, on_event: OnEvent, max_codes: int, pause: float
    ) -> None:
        self.factory = factory
        self.user = user
        self.on_event = on_event
        self.max_codes = max_codes
        self.pause = pause
        self.api = factory(None)  # QR codes always come from the configured host
        self.poll = self.api  # the polling host (changed by a redirect)
        self.number = 0
        self.qrcode = ""
        self.scanned = False
        self.code: str | None = None  # the verify code to send with the next poll

    async def emit(self, kind: str, message: str, **fields: Any) -> str | None:
        event = LinkEvent(kind, message, number=self.number, codes=self.max_codes, **fields)
        return await self.on_event(event)

    async def new_code(self) -> None:
        try:
            answer = await self.api.get_bot_qrcode()
        except ILinkError as exc:
            raise LinkFailed(f"could not get a QR code: {exc}") from None
        self.number += 1
        self.qrcode, self.scanned, self.code = answer["qrcode"], False, None
        await self.emit(
            QRCODE,
            f"QR code {self.number} of {self.max_codes}: scan it with WeChat",
            url=answer["qrcode_img_content"],
        )

    async def refresh(self, kind: str, message: str) -> None:
        if self.number >= self.max_codes:
            raise LinkFailed(f"{message}, {self.max_codes} QR codes in all; try again later")
        await self.emit(kind, f"{message}; here is a new QR code")
        await self.new_code()

    async def run(self) -> Link:
        await self.new_code()
        errors = 0
        while True:
            started = time.monotonic()
            try:
                answer = await self.poll.get_qrcode_status(self.qrcode, self.code, POLL_TIMEOUT)
            except ILinkError as exc:
                errors += 1
                if errors >= MAX_ERRORS:
                    raise LinkFailed(f"the QR status keeps failing: {exc}") from None
                await self.emit(RETRY, f"could not read the QR status ({exc}); retrying")
                await asyncio.sleep(self.pause)
                continue
            errors = 0
            status = answer.get("status")
            if status == "confirmed":
                return await self.confirmed(answer)
            if status == "need_verifycode":
                await self.verify()
                continue  # poll again at once, with the number
            await self.step(status, answer)
            rest = self.pause - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)

    async def step(self, status: Any, answer: dict[str, Any]) -> None:
        if status == "wait":
            return
        if status == "scaned":
            self.code = None  # a number sent was right
            if not self.scanned:
                self.scanned = True
                await self.emit(SCANNED, "scanned: confirm on the phone")
        elif status == "expired":
            await self.refresh(EXPIRED, "the QR code expired")
        elif status == "verify_code_blocked":
            await self.refresh(BLOCKED, "too many wrong numbers for this QR code")
        elif status == "scaned_but_redirect":
            await self.redirect(answer.get("redirect_host"))
        elif status == "binded_redirect":
            raise LinkFailed(
                "this WeChat account is linked to this bot already, so WeChat issued no new "
                f"link; if {self.user} has none, unbind the bot in WeChat and link again"
            )
        else:
            log.debug("QR status %r: polling on", status)

    async def verify(self) -> None:
        wrong = self.code is not None
        prompt = (
            "that number did not match; enter the number WeChat shows on the phone"
            if wrong
            else "enter the number WeChat shows on the phone"
        )
        answer = await self.emit(VERIFY, prompt, wrong=wrong)
        code = (answer or "").strip()
        if not code:
            raise LinkFailed("no number entered; the link was not made")
        self.code = code

    async def redirect(self, host: Any) -> None:
        if not isinstance(host, str) or not host.strip() or "/" in host.strip():
            log.warning("scaned_but_redirect without a usable redirect_host; polling on")
            return
        scheme = urlsplit(self.api.base_url).scheme or "https"
        self.poll = self.factory(f"{scheme}://{host.strip()}")
        await self.emit(REDIRECT, f"WeChat moved the login to {host.strip()}; following it")

    async def confirmed(self, answer: dict[str, Any]) -> Link:
        missing = [
            key for key in ("bot_token", "ilink_bot_id", "ilink_user_id") if not answer.get(key)
        ]
        if missing:
            raise LinkFailed(f"the scan was confirmed but WeChat sent no {', '.join(missing)}")
        result = new_link(self.user, answer, self.poll.base_url)
        await self.emit(CONFIRMED, f"confirmed: WeChat user {result.ilink_user_id}")
        return result
