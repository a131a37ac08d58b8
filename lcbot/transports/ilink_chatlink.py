"""``link NAME`` from chat: the iLink QR flow (``lcbot.ilink.linking``) in the background of
the running bot, its progress told to the root user who asked.

The QR link goes to root privately, to forward to NAME; scanned / expired / confirmed follow.
On ``confirmed`` the user is bound (``ilink`` in lcbot.toml) and the link saved, as by
``lcbot user link NAME``; the transport picks it up within a second. When WeChat asks for
the number shown on the phone, root answers ``link NAME NUMBER``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from lcbot.ilink import linking
from lcbot.ilink.store import Link, LinkStore

log = logging.getLogger("lcbot.ilink")

Tell = Callable[[str], None]
CODE_WAIT = 300.0  # seconds root has to send the number WeChat asks for


class ChatLinks:
    """The links under way from chat, one per user at a time."""

    def __init__(
        self,
        api_factory: linking.ApiFactory,
        store: LinkStore,
        bind: Callable[[str, str], Any],
    ) -> None:
        self.api_factory = api_factory
        self.store = store
        self.bind = bind  # (user, ilink user id): write ``ilink`` into lcbot.toml (blocking)
        self.running: dict[str, asyncio.Task[None]] = {}
        self.codes: dict[str, asyncio.Future[str]] = {}

    def start(self, user: str, tell: Tell, number: str | None = None) -> str:
        """Start linking ``user`` (on the event loop); with ``number``, answer the number
        WeChat asked for. Returns the immediate answer; ``tell`` gets the rest."""
        key = user.casefold()
        if number is not None:
            waiting = self.codes.get(key)
            if waiting is None or waiting.done():
                return f"no link of {user} waits for a number"
            waiting.set_result(number)
            return f"number sent to WeChat for {user}"
        task = self.running.get(key)
        if task is not None and not task.done():
            return f"a link for {user} is under way already (its QR link went to you)"
        task = self.running[key] = asyncio.create_task(
            self._run(user, tell), name=f"lcbot-ilink-link-{user}"
        )
        task.add_done_callback(lambda _: self.running.pop(key, None))
        return f"asking WeChat for a QR code for {user}; it comes to you privately"

    async def stop(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, user: str, tell: Tell) -> None:
        async def on_event(event: linking.LinkEvent) -> str | None:
            return await self._event(user, tell, event)

        try:
            link = await linking.link(self.api_factory, user, on_event)
            await asyncio.to_thread(self._keep, link)
        except linking.LinkFailed as exc:
            tell(f"link {user} failed: {exc}")
            return
        except LookupError as exc:  # bind: the user is gone, or the account is someone else's
            tell(f"link {user} failed: {exc}")
            return
        except Exception as exc:
            log.exception("ilink: linking %s from chat failed", user)
            tell(f"link {user} failed: {type(exc).__name__}: {exc}")
            return
        log.warning("ilink: %s linked from chat (iLink user %s)", user, link.ilink_user_id)
        tell(
            f"{user} is linked. {user} should now send the bot any message: WeChat lets it "
            "write to them only after that"
        )

    def _keep(self, link: Link) -> None:
        """Bind the user, then save the link (a new scan starts with a fresh state)."""
        self.bind(link.user, link.ilink_user_id)
        self.store.remove_state(link.user)
        self.store.save(link)

    async def _event(self, user: str, tell: Tell, event: linking.LinkEvent) -> str | None:
        if event.kind == linking.QRCODE:
            tell(
                f"QR link for {user} ({event.number} of {event.codes}): forward it to {user}, "
                f"who opens it or scans it as a QR code with WeChat: {event.url}"
            )
        elif event.kind == linking.VERIFY:
            return await self._number(user, tell, event)
        elif event.kind in (linking.RETRY, linking.CONFIRMED):  # confirmed: told once kept
            log.info("ilink: link %s: %s", user, event.message)
        else:
            tell(f"link {user}: {event.message}")
        return None

    async def _number(self, user: str, tell: Tell, event: linking.LinkEvent) -> str | None:
        key = user.casefold()
        waiting = self.codes[key] = asyncio.get_running_loop().create_future()
        again = "that number did not match; " if event.wrong else ""
        tell(
            f"link {user}: {again}WeChat asks for the number shown on {user}'s phone: ask "
            f"{user} and send: link {user} NUMBER"
        )
        try:
            return await asyncio.wait_for(waiting, CODE_WAIT)
        except (asyncio.TimeoutError, TimeoutError):
            return None
        finally:
            self.codes.pop(key, None)
