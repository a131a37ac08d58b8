"""The command parse flow: Incoming → user → command → authorize → run handler → outbox.

Sync handlers run in a bounded thread pool, async ones on the event loop. Invocations of
one SET command never overlap (FIFO lock per command, or ``busy`` with
``concurrency="reject"``); GET commands never wait for SETs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lcbot.asyncutil import wait_event
from lcbot.commands import CmdType, Command, CommandError, Invocation, Registry, parse
from lcbot.transports.base import Incoming
from lcbot.users import Directory, User
from lcbot.workers import HandlerPool

if TYPE_CHECKING:  # pragma: no cover
    from lcbot.alerts import Alert
    from lcbot.bot import Bot

log = logging.getLogger("lcbot.dispatch")

QUIT_CONFIRM_SECONDS = 60.0
STOPPING = "the bot is stopping: not run; send it again once it is back"

Put = Callable[..., None]  # the outbox's put(recipient, text, kind="reply")


class People(Protocol):
    """Who sent a message and who can be told (the roster)."""

    directory: Directory

    def identify(self, msg: Incoming) -> User | None: ...

    def reachable(self, user: User) -> bool: ...

    def reachable_users(self) -> list[User]: ...


class Context:
    """What a handler receives: the invocation, its plugin's ``bot``, ways to answer.
    Safe from any thread."""

    __slots__ = ("_put", "bot", "invocation", "reply_to")

    def __init__(self, invocation: Invocation, reply_to: str, bot: Bot, put: Put) -> None:
        self.invocation = invocation
        self.reply_to = reply_to
        self.bot = bot
        self._put = put

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
        self._put(self.reply_to, str(text))

    def alert(
        self,
        text: str,
        level: str = "info",
        title: str | None = None,
        key: str | None = None,
        resolved: bool = False,
    ) -> Alert:
        """Raise an alert from this command (source: the command name); returns it."""
        return self.bot.alert(text, level, title, key, resolved, source=self.command.name)


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
        pool: HandlerPool,
        bot_for: Callable[[str], Bot],
        strangers: Callable[[Incoming], Awaitable[bool]],
        request_stop: Callable[[], None],
        slow_notice: float = 10.0,
    ) -> None:
        self.registry = registry
        self.people = people
        self.allowed = allowed
        self.allowed_users = allowed_users  # the same rule, for many users at once
        self.put = put
        self.pool = pool
        self.bot_for = bot_for  # plugin name → its Bot (ctx.bot)
        self.strangers = strangers  # messages from unknown senders (``bind CODE``)
        self.request_stop = request_stop
        self.slow_notice = slow_notice
        self.running: dict[int, tuple[float, str, str]] = {}  # token → started, to, name
        self.active = 0  # messages being handled
        self.open = asyncio.Event()  # set once the bot has started: messages wait for it
        self.closed = False  # set when the bot stops: new messages are not run
        self._idle = asyncio.Event()
        self._idle.set()
        self._tokens = itertools.count()
        self._watcher: asyncio.Task[None] | None = None
        self.set_states: dict[str, _SetState] = {}
        self.pending_quit: dict[str, tuple[Command, float, str]] = {}

    @contextlib.asynccontextmanager
    async def serving(self, stop_wait: Callable[[], float]) -> AsyncIterator[None]:
        """Handle messages from here on; at the end, take no new command and wait
        (``stop_wait()`` s at most) for the commands still running."""
        self.open.set()
        try:
            yield
        finally:
            self.closed = True  # before the shutdown hooks: no command runs after them
        try:
            if not await self.wait_idle(stop_wait()):
                log.warning("stopping while commands still run; their answers may be lost")
        finally:
            if self._watcher is not None:
                self._watcher.cancel()
                await asyncio.gather(self._watcher, return_exceptions=True)

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
        return self.pool.submit(lambda _: fn(), None)

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
        command = self.registry.get(parsed[0]) if parsed else None
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
            ok = await self.execute(invocation, reply_to)
        if ok:
            self._notify_set(invocation)

    def _notify_set(self, invocation: Invocation) -> None:
        user, command, extra = invocation.user, invocation.command, invocation.extra
        notice = f"{user.name} set {command.name}: {extra}"
        others = [o for o in self.people.reachable_users() if o.name != user.name]
        for other in self.allowed_users(others, command, extra):
            self.say(other.name, notice, "notice")

    async def execute(self, invocation: Invocation, reply_to: str) -> bool:
        """Run the handler; reply with its result or its failure. True when it succeeded."""
        command = invocation.command
        ctx = Context(invocation, reply_to, self.bot_for(command.plugin), self.put)
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
