"""Running command handlers: ``def`` handlers in the handler pool, ``async def`` ones on the
event loop; every way a handler can end becomes a result or a ``NAME failed: …`` reply.

A ``def`` handler that has proved quick in the pool (``INLINE_AFTER`` runs within
``INLINE_LIMIT``; a slower run halves its score) is called on the event loop instead (a
thread hop costs more than such a handler); one run there over ``DEMOTE_AFTER``, or one
that cannot run on the loop, sends it back to the pool for good. ``thread=True`` on the
command keeps it in the pool.

``Runner`` keeps what is running (for "still running…" notices, the loop watchdog and
the stop that names what it waits for). Only lcbot's own cancellation — the bot stopping
— ends a handler silently; a handler that raises ``KeyboardInterrupt``, ``SystemExit``,
``GeneratorExit`` or ``CancelledError`` itself has failed like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from lcbot.asyncutil import background
from lcbot.commands import Command, CommandError, Invocation
from lcbot.text import quote
from lcbot.users import User
from lcbot.workers import HandlerFailed, HandlerPool, call

if TYPE_CHECKING:  # pragma: no cover
    from lcbot.alerts import Alert
    from lcbot.bot import Bot

log = logging.getLogger("lcbot.dispatch")

FAILURE_TEXT = 300  # characters of a failure's message in its reply
INLINE_AFTER = 16  # score (quick runs in the pool) at which a def handler runs on the loop
INLINE_LIMIT = 0.001  # seconds: a run that quick scores +1; a slower one halves the score
DEMOTE_AFTER = 0.020  # seconds: a run on the loop this long sends the handler back for good
Put = Callable[..., None]  # the outbox's put(recipient, text, kind="reply")


class Context:
    """What a handler receives: the invocation, its plugin's ``bot``, ways to answer.
    Safe from any thread."""

    __slots__ = ("_put", "_put_file", "bot", "invocation", "reply_to")

    def __init__(
        self, invocation: Invocation, reply_to: str, bot: Bot, put: Put, put_file: Put
    ) -> None:
        self.invocation = invocation
        self.reply_to = reply_to
        self.bot = bot
        self._put = put
        self._put_file = put_file

    @property
    def user(self) -> User:
        return self.invocation.user

    @property
    def command(self) -> Command:
        return self.invocation.command

    @property
    def extra(self) -> str | None:
        return self.invocation.extra

    @property
    def room_id(self) -> str | None:
        """The group chat the command was sent in; None in a private chat."""
        return self.invocation.room_id

    @property
    def room_topic(self) -> str | None:
        """That group's name, when the transport knows it."""
        return self.invocation.room_topic

    def reply(self, text: str) -> None:
        """Send an extra message to the caller (queued durably; any thread)."""
        self._put(self.reply_to, str(text))

    def reply_file(self, file: str | os.PathLike[str] | bytes, name: str | None = None) -> None:
        """Send the caller a file: a path (copied now) or bytes, named ``name`` (default: the
        path's name, ``file.bin`` for bytes). Written to the data dir before it returns (an
        ``async def`` handler sending a large file may prefer ``asyncio.to_thread``);
        ``FileTooLarge`` above ``[files] max_size``: uncaught, the caller is told the limit."""
        self._put_file(self.reply_to, file, name)

    def alert(
        self,
        text: str,
        level: str = "info",
        title: str | None = None,
        key: str | None = None,
        resolved: bool = False,
        labels: dict[str, str] | None = None,
    ) -> Alert:
        """Raise an alert from this command (source: the command name); returns it."""
        return self.bot.alert(
            text, level, title, key, resolved, source=self.command.name, labels=labels
        )


@dataclass(slots=True)
class Running:
    """One handler at work."""

    started: float
    reply_to: str
    name: str
    user: str
    notified: bool = False


class Runner:
    def __init__(
        self,
        pool: HandlerPool,
        put: Put,
        bot_for: Callable[[str], Bot],
        slow_notice: float,
        put_file: Put,
    ) -> None:
        self.pool = pool
        self.put = put
        self.put_file = put_file  # the outbox's put_file(recipient, file, name)
        self.bot_for = bot_for  # plugin name → its Bot (ctx.bot)
        self.slow_notice = slow_notice
        self.running: dict[int, Running] = {}
        self.closing = False  # the bot stops: a cancellation now is lcbot's own
        self._tokens = itertools.count()
        # def handler → its quick runs in a row in the pool (-1: never inline again)
        self.quick: dict[Callable[..., Any], int] = {}

    async def execute(self, invocation: Invocation, reply_to: str) -> bool:
        """Run the handler; reply with its result or its failure. True when it succeeded."""
        command = invocation.command
        ctx = Context(invocation, reply_to, self.bot_for(command.plugin), self.put, self.put_file)
        token = next(self._tokens)
        self.running[token] = Running(
            time.monotonic(), reply_to, command.name, invocation.user.name
        )
        try:
            if command.is_async:
                result = await self._guarded(command.handler, ctx)
            elif self.quick.get(command.handler, 0) >= INLINE_AFTER and not command.thread:
                result = self._inline(command.handler, ctx)
            else:
                took, result = await self.pool.submit(_timed, (command.handler, ctx))
                self._learn(command.handler, took)
            if result is not None and type(result) is not str and inspect.isawaitable(result):
                result = await self._guarded(lambda _: result, ctx)
            text = None if result is None else str(result)
        except Exception as exc:
            self._failed(invocation, reply_to, exc)
            return False
        except asyncio.CancelledError:
            if self.closing:
                raise  # the bot stops: silent
            self._failed(invocation, reply_to, HandlerFailed("cancelled"))
            return False
        finally:
            self.running.pop(token, None)
        if text:
            self.put(reply_to, text)
        return True

    def _learn(self, handler: Callable[..., Any], took: float) -> None:
        """Score a ``def`` handler's run in the pool: +1 when quick, halved when not (a run
        that only waited for the GIL now and then does not start it over)."""
        score = self.quick.get(handler, 0)
        if score >= 0:
            self.quick[handler] = score + 1 if took < INLINE_LIMIT else score // 2

    def _inline(self, handler: Callable[..., Any], ctx: Context) -> Any:
        """Call a quick ``def`` handler on the event loop (no thread hop). One that takes
        longer than ``DEMOTE_AFTER``, or cannot run on the loop, goes back to the pool."""
        started = time.perf_counter()
        ok, value = call(handler, ctx)
        took = time.perf_counter() - started
        on_loop = isinstance(value, RuntimeError) and "event loop" in str(value)
        if took > DEMOTE_AFTER or on_loop:
            self.quick[handler] = -1
            log.info(
                "command %s took %.0f ms on the event loop%s: it runs in the thread pool now",
                ctx.command.name,
                took * 1000,
                " and could not run there" if on_loop else "",
            )
        if not ok:
            raise value
        return value

    async def _guarded(self, handler: Any, ctx: Context) -> Any:
        """Await an async handler; whatever it raises becomes an ordinary exception
        (asyncio re-raises SystemExit and KeyboardInterrupt out of the loop, and cannot
        store StopIteration in a future)."""
        try:
            return await handler(ctx)
        except Exception:
            raise
        except asyncio.CancelledError:
            if self.closing:
                raise
            raise HandlerFailed("CancelledError raised by the handler") from None
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, GeneratorExit
            if self.closing and isinstance(exc, GeneratorExit):
                raise  # Python closes a coroutine that the stop left behind: silent
            raise HandlerFailed.of(exc) from exc

    def _failed(self, invocation: Invocation, reply_to: str, exc: Exception) -> None:
        expected = isinstance(exc, CommandError)
        log.log(
            logging.INFO if expected else logging.ERROR,
            "command %s from %s failed: %s",
            invocation.command.name,
            invocation.user.name,
            exc,
            exc_info=None if expected else exc,
        )
        reason = quote(str(exc) or type(exc).__name__, FAILURE_TEXT)
        self.put(reply_to, f"{invocation.command.name} failed: {reason}")

    # --- what runs -------------------------------------------------------------------------

    def notify_slow(self) -> None:
        """Tell callers of handlers running longer than ``slow_notice`` (once each). Safe from
        the loop watchdog's thread too, so the notice goes out even if the loop is blocked."""
        if self.slow_notice <= 0:
            return
        now = time.monotonic()
        for job in list(self.running.values()):
            if not job.notified and now - job.started >= self.slow_notice:
                job.notified = True
                self.put(job.reply_to, f"{job.name}: still running…")

    def still_running(self) -> list[str]:
        """``NAME (from USER, 12s)`` of each handler at work."""
        now = time.monotonic()
        return [f"{j.name} (from {j.user}, {now - j.started:.0f}s)" for j in self.running.values()]

    def describe(self, frame: FrameType | None) -> str | None:
        """The handler (async, or def on the loop) running in ``frame``'s stack, if one is."""
        while frame is not None:
            if frame.f_code is _GUARDED or frame.f_code is _INLINE:
                ctx = frame.f_locals.get("ctx")
                if isinstance(ctx, Context):
                    return f"{ctx.command.name} (from {ctx.user.name})"
            frame = frame.f_back
        return None

    def watching(self) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
        """Send "still running…" notices while the block runs."""
        return background(self._watch(), "lcbot-slow")

    async def _watch(self) -> None:
        period = min(1.0, self.slow_notice / 4) if self.slow_notice > 0 else 3600.0
        while True:
            await asyncio.sleep(period)
            self.notify_slow()


def _timed(job: tuple[Callable[..., Any], Context]) -> tuple[float, Any]:
    """Run a def handler (in the pool): (seconds it took, its result)."""
    handler, ctx = job
    started = time.perf_counter()
    result = handler(ctx)
    return time.perf_counter() - started, result


_GUARDED = Runner._guarded.__code__
_INLINE = Runner._inline.__code__
