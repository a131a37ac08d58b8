"""The command parse flow: Incoming → user → rate limit → command → authorize → confirm /
approve → run handler → outbox; every invocation of a known command is audited.

Sync handlers run in a bounded thread pool, async ones on the event loop. Invocations of
one SET command never overlap (FIFO lock per command, or ``busy`` with
``concurrency="reject"``); GET commands never wait for SETs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lcbot.approval import Request
from lcbot.asyncutil import background, wait_event
from lcbot.commands import CmdType, Command, Invocation, Registry, parse
from lcbot.handlers import Context, Put, Runner
from lcbot.resolve import resolve
from lcbot.safety import Safety
from lcbot.text import quote
from lcbot.transports.base import Incoming
from lcbot.users import Directory, Pri, User

log = logging.getLogger("lcbot.dispatch")

STOPPING = "the bot is stopping: not run; send it again once it is back"

__all__ = ["Context", "Dispatcher"]


class People(Protocol):
    """Who sent a message and who can be told (the roster)."""

    directory: Directory

    def identify(self, msg: Incoming) -> User | None: ...

    def reachable(self, user: User) -> bool: ...

    def reachable_users(self) -> list[User]: ...


@dataclass
class _SetState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holder: str = ""
    started: float = 0.0


class Dispatcher:
    """The command parse flow. Given what it uses by the App; never holds the App."""

    def __init__(
        self,
        *,
        registry: Registry,
        people: People,
        denial: Callable[[User, Command, str | None], str | None],
        allowed_users: Callable[[list[User], Command, str | None], list[User]],
        put: Put,
        runner: Runner,
        strangers: Callable[[Incoming], Awaitable[bool]],
        request_stop: Callable[[], None],
        safety: Safety,
    ) -> None:
        self.registry = registry
        self.people = people
        self.denial = denial  # None if allowed, else what denies (privilege, a plugin's hook)
        self.allowed_users = allowed_users  # the same rule, for many users at once
        self.put = put
        self.runner = runner  # runs the handlers
        self.strangers = strangers  # messages from unknown senders (``bind CODE``)
        self.request_stop = request_stop
        self.active = 0  # messages being handled
        self.open = asyncio.Event()  # set once the bot has started: messages wait for it
        self.closed = False  # set when the bot stops: new messages are not run
        self._idle = asyncio.Event()
        self._idle.set()
        self.set_states: dict[str, _SetState] = {}
        self.audit, self.gate, self.limit = safety.audit, safety.gate, safety.limit
        self.gate.approvers = lambda sender: [
            u for u in people.reachable_users() if u.pri <= Pri.ADMIN and u.name != sender.name
        ]
        self.gate.run, self.gate.refused = self._approved, self._refused

    @contextlib.asynccontextmanager
    async def serving(self, stop_wait: Callable[[], float]) -> AsyncIterator[None]:
        """Handle messages from here on; at the end, take no new command and wait
        (``stop_wait()`` s at most) for the commands still running."""
        self.open.set()
        try:
            async with self.runner.watching(), background(self._sweeping(), "lcbot-gate"):
                yield
        finally:
            self.closed = True  # before the shutdown hooks: no command runs after them
        if not await self.wait_idle(stop_wait()):
            log.warning(
                "stopping while commands still run (their answers are lost): %s",
                ", ".join(self.runner.still_running()),
            )
        self.runner.closing = True  # what is still running is cancelled when the loop ends

    def say(self, recipient: str, text: str, kind: str = "reply") -> None:
        self.put(recipient, text, kind)

    async def _sweeping(self) -> None:
        while True:  # confirmations and approvals whose time is up
            await asyncio.sleep(1.0)
            try:
                self.gate.sweep()
            except Exception:
                log.exception("confirmations and approvals could not be swept")

    # --- the flow ----------------------------------------------------------------------

    async def handle(self, msg: Incoming) -> None:
        """Handle one message to completion (the handler included); never raises.
        Messages that arrive before the bot has started wait for it."""
        if not self.open.is_set() and not self.closed:
            await self.open.wait()
        if self.closed:
            self._refuse(msg)
            return
        await self._counted(self._handle(msg), msg)

    async def _approved(self, request: Request) -> None:
        """An approved request runs like a message: a stop waits for it."""
        if self.closed:
            self.say(request.reply_to, STOPPING)
            self._refused(request, "bot stopping")
            return
        await self._counted(self._proceed(request), f"approved {request.what}")

    async def _counted(self, work: Awaitable[None], what: str | Incoming) -> None:
        self.active += 1
        self._idle.clear()
        try:
            await work
        except Exception:
            if isinstance(what, Incoming):
                what = f"message from {what.sender_id!r}"
            log.exception("%s could not be handled", what)
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()

    def _refuse(self, msg: Incoming) -> None:
        """The bot is stopping: a known user is told the command did not run."""
        user = self.people.identify(msg)
        if user is not None and msg.text.strip():
            log.info("%s sent a message while the bot stops: not run", user.name)
            self.say(msg.reply_to or user.name, STOPPING)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no message is being handled (or ``timeout``); True if idle."""
        if self.active == 0:
            return True
        await wait_event(self._idle, timeout)
        return self.active == 0

    def run_sync(self, fn: Any) -> Any:
        """Run ``fn()`` in the handler pool; returns an awaitable (for scheduled jobs)."""
        return self.runner.pool.submit(lambda _: fn(), None)

    async def _handle(self, msg: Incoming) -> None:
        user = self.people.identify(msg)
        if user is None:
            if msg.room_id is None and await self.strangers(msg):
                return
            log.info("ignored message from unknown sender %r", msg.sender_id)
            return
        reply_to = msg.reply_to or user.name
        if self.limit is not None and (slow := self.limit.check(user)) is not None:
            if slow:
                self.say(reply_to, slow)
            parsed = parse(msg.text)
            self.audit.log(
                user,
                msg.sender_id,
                parsed[0] if parsed else "?",
                parsed[1] if parsed else None,
                "rate limit",
                None,
                0.0,
                msg.room_id,
            )
            return
        if self.gate.confirming and (answer := self.gate.answer(user, msg.text)):
            if answer is not True:
                await self._proceed(answer)
            return
        parsed = parse(msg.text)
        found = resolve(self.registry, *parsed) if parsed else None
        if isinstance(found, str):  # a name several jobs (or plugins) offer
            self.say(reply_to, found)
            return
        if parsed is None or found is None:
            word = parsed[0] if parsed else msg.text.strip()[:32]
            if word:
                self.say(reply_to, f"unknown command '{word}' — send help")
            return
        command, extra = found
        denied = self.denial(user, command, extra)
        if denied is not None:
            log.warning("denied: user %s may not run %s (%s)", user.name, command.name, denied)
            self.say(reply_to, f"not allowed: {command.name}")
            self.audit.log(user, msg.sender_id, command.name, extra, denied, None, 0.0, msg.room_id)
            return
        if command.kind is CmdType.SET and extra is None:
            self.say(reply_to, f"usage: {command.usage_text}")
            self.audit.log(user, msg.sender_id, command.name, None, "", "usage", 0.0, msg.room_id)
            return
        invocation = Invocation(command, user, extra, msg.room_id, msg.room_topic)
        if command.kind is CmdType.QUIT or command.confirm or command.approve:
            request = Request(invocation, reply_to, msg.sender_id, 0.0)
            if command.kind is CmdType.QUIT or command.confirm:
                self.gate.ask(request)
            else:
                self.gate.request_approval(request)
            return
        started = time.monotonic()
        outcome = await self._run(invocation, reply_to)
        self.audit.log(
            user,
            msg.sender_id,
            command.name,
            extra,
            "",
            outcome,
            time.monotonic() - started,
            msg.room_id,
        )

    async def _proceed(self, request: Request) -> None:
        """A confirmed or approved request: on to approval if it needs one, else run it."""
        command = request.invocation.command
        if command.approve and not request.by.startswith("approved"):
            self.gate.request_approval(request)
            return
        invocation, started = request.invocation, time.monotonic()
        if command.kind is CmdType.QUIT:
            log.warning("%s confirmed %s: stopping", invocation.user.name, command.name)
        outcome = await self._run(invocation, request.reply_to)
        self.audit.log(
            invocation.user,
            request.contact,
            command.name,
            invocation.extra,
            request.by,
            outcome,
            time.monotonic() - started,
            invocation.room_id,
        )
        if outcome == "ok" and command.kind is CmdType.QUIT:
            self.request_stop()

    def _refused(self, request: Request, why: str) -> None:
        """A request that did not run (not confirmed, approval denied or expired)."""
        inv = request.invocation
        self.audit.log(
            inv.user, request.contact, inv.command.name, inv.extra, why, None, 0.0, inv.room_id
        )

    async def _run(self, invocation: Invocation, reply_to: str) -> str:
        """Run the handler: ``ok``, ``failed`` or ``busy``."""
        if invocation.command.kind is CmdType.SET:
            return await self._run_set(invocation, reply_to)
        return "ok" if await self.runner.execute(invocation, reply_to) else "failed"

    async def _run_set(self, invocation: Invocation, reply_to: str) -> str:
        command = invocation.command
        state = self.set_states.setdefault(command.name, _SetState())
        if command.concurrency == "reject" and state.lock.locked():
            ago = time.monotonic() - state.started
            self.say(reply_to, f"busy: {command.name} started by {state.holder} {ago:.0f}s ago")
            return "busy"
        async with state.lock:
            state.holder, state.started = invocation.user.name, time.monotonic()
            ok = await self.runner.execute(invocation, reply_to)
        if ok:
            self._notify_set(invocation)
        return "ok" if ok else "failed"

    def _notify_set(self, invocation: Invocation) -> None:
        user, command, extra = invocation.user, invocation.command, invocation.extra
        notice = f"{user.name} set {command.name}: {quote(extra or '')}"
        # who may run it at all (asked for the whole roster: the answer is kept a second)
        for other in self.allowed_users(self.people.reachable_users(), command, None):
            if other.name != user.name:
                self.say(other.name, notice, "notice")
