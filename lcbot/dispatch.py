"""The command parse flow: Incoming → user → command → authorize → run handler → outbox.

Sync handlers run in a bounded thread pool, async ones on the event loop. Invocations of
one SET command never overlap (FIFO lock per command, or ``busy`` with
``concurrency="reject"``); GET commands never wait for SETs.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lcbot.asyncutil import wait_event
from lcbot.commands import CmdType, Command, CommandError, Invocation, parse
from lcbot.transports.base import Incoming
from lcbot.users import User
from lcbot.workers import HandlerPool

if TYPE_CHECKING:  # pragma: no cover
    from lcbot.app import App

log = logging.getLogger("lcbot.dispatch")

QUIT_CONFIRM_SECONDS = 60.0


class Context:
    """What a handler receives: the invocation plus ways to answer. Safe from any thread."""

    __slots__ = ("app", "invocation", "reply_to")

    def __init__(self, app: App, invocation: Invocation, reply_to: str) -> None:
        self.app = app
        self.invocation = invocation
        self.reply_to = reply_to

    @property
    def user(self) -> User:
        return self.invocation.user

    @property
    def command(self) -> Command:
        return self.invocation.command

    @property
    def extra(self) -> str | None:
        return self.invocation.extra

    def reply(self, text: str) -> None:
        """Send an extra message to the caller (queued durably; any thread)."""
        self.app.outbox.put(self.reply_to, str(text))

    def alert(
        self,
        text: str,
        level: str = "info",
        title: str | None = None,
        key: str | None = None,
        resolved: bool = False,
    ) -> int:
        """Raise an alert from this command (source: the command name); returns its id."""
        return self.app.alert(text, level, title, key, resolved, source=self.command.name)


@dataclass
class _SetState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holder: str = ""
    started: float = 0.0


class Dispatcher:
    def __init__(self, app: App) -> None:
        self.app = app
        self.pool = HandlerPool(app.config.bot.workers)
        self.slow_notice = app.config.bot.slow_notice
        self.running: dict[int, tuple[float, str, str]] = {}  # token → started, to, name
        self.active = 0  # messages being handled
        self._idle: asyncio.Event | None = None
        self._tokens = itertools.count()
        self._watcher: asyncio.Task[None] | None = None
        self.set_states: dict[str, _SetState] = {}
        self.pending_quit: dict[str, tuple[Command, float, str]] = {}

    def close(self) -> None:
        self.pool.shutdown()
        if self._watcher is not None:
            self._watcher.cancel()

    async def _watch_slow(self) -> None:
        """Tell callers of handlers running longer than ``slow_notice`` (once each)."""
        period = min(1.0, self.slow_notice / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for token, (started, reply_to, name) in list(self.running.items()):
                if now - started >= self.slow_notice:
                    del self.running[token]
                    self.say(reply_to, f"{name}: still running…")

    # --- who and what ------------------------------------------------------------------

    def resolve(self, msg: Incoming) -> User | None:
        directory = self.app.directory
        if self.app.transport.identity == "id":
            return directory.by_wxid(msg.sender_id)
        return directory.by_name(msg.sender_name)

    def allowed(self, user: User, command: Command, extra: str | None) -> bool:
        """authorize hooks: any False denies, else any True allows, else privilege rule."""
        if not self.app.plugins.implementations("authorize"):
            return user.pri <= command.pri
        votes = self.app.plugins.call("authorize", user=user, command=command, extra=extra)
        if False in votes:
            return False
        if True in votes:
            return True
        return user.pri <= command.pri

    def say(self, recipient: str, text: str, kind: str = "reply") -> None:
        self.app.outbox.put(recipient, text, kind)

    # --- the flow ----------------------------------------------------------------------

    async def handle(self, msg: Incoming) -> None:
        """Handle one message to completion (the handler included); never raises."""
        if self._idle is None:
            self._idle = asyncio.Event()
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

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no message is being handled (or ``timeout``); True if idle."""
        if self.active == 0 or self._idle is None:
            return True
        await wait_event(self._idle, timeout)
        return self.active == 0

    def run_sync(self, fn: Any) -> Any:
        """Run ``fn()`` in the handler pool; returns an awaitable (for scheduled jobs)."""
        return self.pool.submit(lambda _: fn(), None)

    async def _handle(self, msg: Incoming) -> None:
        user = self.resolve(msg)
        if user is None:
            if msg.room_id is None and await self.app.binder.handle(msg):
                return
            log.info("ignored message from unknown sender %r", msg.sender_id)
            return
        reply_to = msg.reply_to or user.name
        if await self._confirm_quit(user, msg.text, reply_to):
            return
        parsed = parse(msg.text)
        command = self.app.registry.get(parsed[0]) if parsed else None
        if parsed is None or command is None:
            word = parsed[0] if parsed else msg.text.strip()[:32]
            if word:
                self.say(reply_to, f"unknown command '{word}' — send help")
            return
        extra = parsed[1]
        if not self.allowed(user, command, extra):
            log.warning("denied: user %s may not run %s", user.name, command.name)
            self.say(reply_to, f"not allowed: {command.name}")
            return
        if command.kind is CmdType.SET and extra is None:
            self.say(reply_to, f"usage: {command.usage_text}")
            return
        if command.kind is CmdType.QUIT:
            self.pending_quit[user.name] = (command, time.monotonic(), extra or "")
            self.say(reply_to, f"send yes within {QUIT_CONFIRM_SECONDS:.0f} s to stop the bot")
            return
        invocation = Invocation(command, user, extra)
        if command.kind is CmdType.SET:
            await self._run_set(invocation, reply_to)
        else:
            await self.execute(invocation, reply_to)

    async def _confirm_quit(self, user: User, text: str, reply_to: str) -> bool:
        pending = self.pending_quit.pop(user.name, None)
        if pending is None:
            return False
        command, asked, extra = pending
        if text.strip().lower() != "yes" or time.monotonic() - asked > QUIT_CONFIRM_SECONDS:
            return False
        log.warning("%s confirmed %s: stopping", user.name, command.name)
        if await self.execute(Invocation(command, user, extra or None), reply_to):
            self.app.request_stop()
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
            ok = await self.execute(invocation, reply_to)
        if ok:
            self._notify_set(invocation)

    def _notify_set(self, invocation: Invocation) -> None:
        user, command, extra = invocation.user, invocation.command, invocation.extra
        notice = f"{user.name} set {command.name}: {extra}"
        hooks = self.app.plugins.implementations("authorize")
        for other in self.app.directory:
            if other.name == user.name or not self.app.transport.can_reach(other):
                continue
            if other.pri <= command.pri if not hooks else self.allowed(other, command, extra):
                self.say(other.name, notice, "notice")

    async def execute(self, invocation: Invocation, reply_to: str) -> bool:
        """Run the handler; reply with its result or its failure. True when it succeeded."""
        command = invocation.command
        ctx = Context(self.app, invocation, reply_to)
        if command.is_async:
            future: asyncio.Future[Any] = asyncio.ensure_future(_guarded(command.handler, ctx))
        else:
            future = self.pool.submit(command.handler, ctx)
        token = next(self._tokens)
        if self.slow_notice > 0:
            self.running[token] = (time.monotonic(), reply_to, command.name)
            if self._watcher is None:
                self._watcher = asyncio.create_task(self._watch_slow(), name="lcbot-slow")
        try:
            result = await future
            if inspect.isawaitable(result):  # a plain def that returned a coroutine
                result = await _guarded(lambda _: result, ctx)
            text = None if result is None else str(result)
        except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() is a failure too
            log.log(
                logging.INFO if isinstance(exc, CommandError) else logging.ERROR,
                "command %s from %s failed: %s",
                command.name,
                invocation.user.name,
                exc,
                exc_info=None if isinstance(exc, CommandError) else exc,
            )
            self.say(reply_to, f"{command.name} failed: {exc or type(exc).__name__}")
            return False
        finally:
            self.running.pop(token, None)
        if text:
            self.say(reply_to, text)
        return True


async def _guarded(handler: Any, ctx: Context) -> Any:
    """Await an async handler; SystemExit and StopIteration become ordinary failures.

    (asyncio re-raises SystemExit out of the event loop, and cannot store StopIteration
    in a future.)
    """
    try:
        return await handler(ctx)
    except (SystemExit, StopIteration, StopAsyncIteration) as exc:
        raise CommandError(str(exc) or type(exc).__name__) from exc
