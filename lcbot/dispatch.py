"""The command parse flow: Incoming → user → command → authorize → run handler → outbox.

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

from lcbot.asyncutil import wait_event
from lcbot.commands import CmdType, Command, Invocation, Registry, parse
from lcbot.handlers import Context, Put, Runner
from lcbot.resolve import resolve
from lcbot.text import quote
from lcbot.transports.base import Incoming
from lcbot.users import Directory, User

log = logging.getLogger("lcbot.dispatch")

QUIT_CONFIRM_SECONDS = 60.0
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
        allowed: Callable[[User, Command, str | None], bool],
        allowed_users: Callable[[list[User], Command, str | None], list[User]],
        put: Put,
        runner: Runner,
        strangers: Callable[[Incoming], Awaitable[bool]],
        request_stop: Callable[[], None],
    ) -> None:
        self.registry = registry
        self.people = people
        self.allowed = allowed
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
        self.pending_quit: dict[str, tuple[Command, float, str]] = {}

    @contextlib.asynccontextmanager
    async def serving(self, stop_wait: Callable[[], float]) -> AsyncIterator[None]:
        """Handle messages from here on; at the end, take no new command and wait
        (``stop_wait()`` s at most) for the commands still running."""
        self.open.set()
        try:
            async with self.runner.watching():
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

    # --- the flow ----------------------------------------------------------------------

    async def handle(self, msg: Incoming) -> None:
        """Handle one message to completion (the handler included); never raises.
        Messages that arrive before the bot has started wait for it."""
        if not self.open.is_set() and not self.closed:
            await self.open.wait()
        if self.closed:
            self._refuse(msg)
            return
        self.active += 1
        self._idle.clear()
        try:
            await self._handle(msg)
        except Exception:
            log.exception("message from %r could not be handled", msg.sender_id)
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
        if await self._confirm_quit(user, msg.text, reply_to):
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
        if not self.allowed(user, command, extra):
            log.warning("denied: user %s may not run %s", user.name, command.name)
            self.say(reply_to, f"not allowed: {command.name}")
            return
        if command.kind is CmdType.SET and extra is None:
            self.say(reply_to, f"usage: {command.usage_text}")
            return
        if command.kind is CmdType.QUIT or command.confirm:
            self.pending_quit[user.name] = (command, time.monotonic(), extra or "")
            what = "stop the bot" if command.kind is CmdType.QUIT else f"run {command.usage_text}"
            self.say(reply_to, f"send yes within {QUIT_CONFIRM_SECONDS:.0f} s to {what}")
            return
        invocation = Invocation(command, user, extra, msg.room_id, msg.room_topic)
        if command.kind is CmdType.SET:
            await self._run_set(invocation, reply_to)
        else:
            await self.runner.execute(invocation, reply_to)

    async def _confirm_quit(self, user: User, text: str, reply_to: str) -> bool:
        pending = self.pending_quit.pop(user.name, None)
        if pending is None:
            return False
        command, asked, extra = pending
        if text.strip().lower() != "yes" or time.monotonic() - asked > QUIT_CONFIRM_SECONDS:
            return False
        stopping = ": stopping" if command.kind is CmdType.QUIT else ""
        log.warning("%s confirmed %s%s", user.name, command.name, stopping)
        ok = await self.runner.execute(Invocation(command, user, extra or None), reply_to)
        if ok and command.kind is CmdType.QUIT:
            self.request_stop()
        return True

    async def _run_set(self, invocation: Invocation, reply_to: str) -> None:
        command = invocation.command
        state = self.set_states.setdefault(command.name, _SetState())
        if command.concurrency == "reject" and state.lock.locked():
            ago = time.monotonic() - state.started
            self.say(reply_to, f"busy: {command.name} started by {state.holder} {ago:.0f}s ago")
            return
        async with state.lock:
            state.holder, state.started = invocation.user.name, time.monotonic()
            ok = await self.runner.execute(invocation, reply_to)
        if ok:
            self._notify_set(invocation)

    def _notify_set(self, invocation: Invocation) -> None:
        user, command, extra = invocation.user, invocation.command, invocation.extra
        notice = f"{user.name} set {command.name}: {quote(extra or '')}"
        others = [o for o in self.people.reachable_users() if o.name != user.name]
        for other in self.allowed_users(others, command, extra):
            self.say(other.name, notice, "notice")
