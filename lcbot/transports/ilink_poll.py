"""One iLink link's long poll: ``getupdates`` in a loop, each new message handed on once.

The cursor and the ids seen are written after each batch was handed to ``on_message``: a
restart (even a kill -9 in the middle of a poll) resumes from the last handled batch, and
the ids skip what a replayed batch holds again. Failures are one log line per distinct
reason, then quiet retries 2 s … 30 s; an expired session (``errcode -14``) ends the poll
until the user links again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from lcbot.ilink.api import ILinkAPI, ILinkError, inbound_text, message_key
from lcbot.ilink.store import Link
from lcbot.transports.base import Incoming
from lcbot.transports.ilink_state import LinkState, save_state

log = logging.getLogger("lcbot.ilink")

RETRY_FIRST, RETRY_MAX = 2.0, 30.0
POLL_MARGIN = 5.0  # seconds a poll may take beyond the server's long-poll time
USER_MESSAGE = 1  # message_type of what a user sends (2: the bot's own)


class Owner(Protocol):
    """What a poll tells the transport."""

    async def handle(self, incoming: Incoming) -> None: ...  # a message, handed on

    def polling_changed(self) -> None: ...  # a poll started or stopped working

    def wrote(self, poller: Poller) -> None: ...  # the user wrote: the window is open again

    def expired(self, poller: Poller) -> None: ...  # errcode -14: the link needs a new scan


class Poller:
    """The poll of one link, and what the transport knows of that link."""

    def __init__(self, link: Link, state: LinkState, api: ILinkAPI, data_dir: Path) -> None:
        self.link = link
        self.state = state
        self.api = api
        self.data_dir = data_dir
        self.ok = False  # the last poll answered
        self.reason: str | None = None  # why the last poll failed
        self.task: asyncio.Task[None] | None = None
        self.timeout = 35.0  # the server's long-poll time (longpolling_timeout_ms)

    @property
    def user(self) -> str:
        return self.link.user

    @property
    def window(self):  # the link's reply window (ilink_window.Window)
        return self.state.window

    def save(self) -> None:
        try:
            save_state(self.data_dir, self.user, self.state)
        except OSError as exc:
            log.error("ilink: could not write the state of %s: %s", self.user, exc)

    def start(self, owner: Owner) -> None:
        self.task = asyncio.create_task(self._run(owner), name=f"lcbot-ilink-{self.user}")

    async def stop(self) -> None:
        task, self.task = self.task, None
        self.ok = False
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self, owner: Owner) -> None:
        delay = RETRY_FIRST
        while not self.window.expired:
            try:
                answer = await self.api.get_updates(
                    self.state.cursor, timeout=self.timeout + POLL_MARGIN
                )
            except ILinkError as exc:
                if exc.session_expired:
                    self._set_ok(False, owner)
                    owner.expired(self)
                    return
                reason = str(exc)
            except (OSError, asyncio.TimeoutError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except Exception as exc:  # aiohttp's ClientError and kin: retried like the rest
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                delay = RETRY_FIRST
                if self.reason is not None:
                    log.warning("ilink: polling for %s works again", self.user)
                self.reason = None
                self._set_ok(True, owner)
                await self._batch(answer, owner)
                continue
            self._failed(reason, owner)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _failed(self, reason: str, owner: Owner) -> None:
        """One line when the reason changes; the same failure again is quiet (debug)."""
        level = logging.DEBUG if reason == self.reason else logging.WARNING
        log.log(level, "ilink: polling for %s failed: %s; retrying with backoff", self.user, reason)
        self.reason = reason
        self._set_ok(False, owner)

    def _set_ok(self, ok: bool, owner: Owner) -> None:
        if ok != self.ok:
            self.ok = ok
            owner.polling_changed()

    async def _batch(self, answer: dict[str, Any], owner: Owner) -> None:
        timeout = answer.get("longpolling_timeout_ms")
        if isinstance(timeout, int | float) and timeout > 0:
            self.timeout = timeout / 1000
        now = time.time()
        wrote = False
        for msg in answer.get("msgs") or []:
            if not isinstance(msg, dict) or msg.get("message_type", USER_MESSAGE) != USER_MESSAGE:
                continue
            key = message_key(msg)
            if key is not None and self.state.saw(key):
                continue
            sender = str(msg.get("from_user_id") or "")
            token = msg.get("context_token")
            if sender == self.link.ilink_user_id or not sender:
                self.window.inbound(token if isinstance(token, str) else None, now)
                wrote = True
            text = inbound_text(msg)
            if text is None:
                log.debug("ilink: a message from %s without text: ignored", self.user)
                continue
            mine = sender == self.link.ilink_user_id
            incoming = Incoming(sender, self.user, text, user=self.user if mine else None)
            try:
                await owner.handle(incoming)
            except Exception:  # handed on all the same: never again
                log.exception("ilink: could not handle a message from %s", self.user)
        cursor = answer.get("get_updates_buf")
        if isinstance(cursor, str) and cursor:
            self.state.cursor = cursor
        self.state.last_poll = now
        self.save()
        if wrote:
            owner.wrote(self)
