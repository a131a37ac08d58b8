"""The drainer: sends stored outbox messages through the transport, at a pace WeChat bears.

* **Order**: per recipient, by priority (replies, notices and critical alerts first, then
  warnings, then info), then oldest first. Recipients whose best message is more urgent
  go first.
* **Coalescing**: all pending messages of one recipient leave as one message (joined by
  line breaks) up to ``max_chars``; a longer message is split at line breaks.
* **Pacing** (``[ratelimit]``): at most ``per_second`` and ``per_minute`` sends overall,
  and ``per_recipient_gap`` seconds between two sends to one recipient; 0 disables each.
* **At-least-once, few duplicates**: a message is marked sent only after the transport
  confirmed it, and a recipient's next message waits until that mark is committed, so a
  crash can repeat at most one (coalesced) message per recipient. (Replies sent unstored
  while the database is locked cannot repeat, so they do not wait.)
* **Retry**: a failed send blocks that recipient with exponential backoff (1 s, 2 s, 4 s …
  up to ``backoff_cap``); after ``max_attempts`` the rows are marked ``dead`` (kept,
  retryable with ``lcbot outbox retry``). Nothing is sent while the transport is down.
* **Holds**: a gated transport (iLink's reply window) makes a recipient wait instead of
  failing: see ``lcbot.holds``; other transports never reach that code.
* **Files** go in the same order and pace, one per send (never coalesced), through
  ``transport.send_file``; a file is removed once its sent mark is stored. A transport that
  cannot send files, or a file gone from the store, makes the row dead at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lcbot.asyncutil import background, wait_event
from lcbot.backlog import Backlog, Loader
from lcbot.files import FileStore
from lcbot.holds import Holds
from lcbot.message import Feed, Message
from lcbot.text import split_text
from lcbot.transports.base import Address, Deferred, Undeliverable

log = logging.getLogger("lcbot.drainer")

WECHAT_PACE = {"per_second": 1, "per_minute": 40, "per_recipient_gap": 3}


class Receipts(Protocol):
    """Where the drainer records deliveries (the outbox)."""

    def mark_sent(self, ids: list[int]) -> int: ...

    def mark_failed(self, message: Message, error: str, dead: bool) -> int: ...

    def mark_part(self, message: Message) -> int: ...

    def record(self, op: Callable[..., Any], *args: Any) -> None: ...

    @property
    def pending(self) -> int:
        """Messages pending in all (in memory and in the database)."""
        ...


class Link(Protocol):
    """The sending side of a transport."""

    ready_event: asyncio.Event

    @property
    def ready(self) -> bool: ...

    def send(self, address: Address, text: str) -> Awaitable[None]: ...

    def send_file(self, address: Address, path: Path, name: str) -> Awaitable[None]: ...


@dataclass(frozen=True)
class Pacing:
    """``[ratelimit]``: pace, message size and retry limits for outgoing messages."""

    per_second: float = 0
    per_minute: float = 0
    per_recipient_gap: float = 0
    max_chars: int = 2000
    max_parts: int = 5
    max_attempts: int = 20
    coalesce: bool = True  # False: every message is its own send (benchmarks)

    @classmethod
    def from_settings(cls, values: dict[str, Any], paced: bool) -> Pacing:
        """From the checked ``[ratelimit]`` values; unset pace keys take WeChat's defaults on a
        paced transport, no limit otherwise."""
        chosen = {k: v for k, v in values.items() if v is not None}
        defaults = WECHAT_PACE if paced else dict.fromkeys(WECHAT_PACE, 0)
        return cls(**{**defaults, **chosen})


class Drainer:
    """Sends what the ``Feed`` brings through ``link``; records deliveries in ``receipts``."""

    def __init__(
        self,
        feed: Feed,
        receipts: Receipts,
        link: Link,
        resolve: Callable[[str], Address | None],
        pacing: Pacing | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff_cap: float = 300.0,
        load: Loader | None = None,
        files: FileStore | None = None,
    ) -> None:
        self.feed = feed
        self.receipts = receipts
        self.link = link
        self.resolve = resolve
        self.pacing = pacing or Pacing()
        self.clock = clock
        self.backoff_cap = backoff_cap
        self.backlog = Backlog(load or (lambda recipient, after, limit: []))
        self.blocked_until: dict[str, float] = {}  # backoff after failures
        self.last_send: dict[str, float] = {}  # per-recipient gap
        self.recent: deque[float] = deque()  # send times within the last minute
        self.uncommitted: dict[str, int] = {}  # recipient → batch that stores its last mark
        self.settling: dict[str, int] = {}  # recipient → batch storing its last failure mark
        self.parts: dict[int, list[str]] = {}  # message id → parts still to send
        self.files = files
        self.sent_files: list[tuple[int, str]] = []  # (batch storing the mark, key): to remove
        self.progress = asyncio.Event()  # set after each round; drain() waits on it
        self.gated = bool(getattr(link, "gated", False))  # ask holds before each send
        self.holds = Holds(link, receipts, self.backlog, self.blocked_until, clock)

    def wake(self) -> None:
        """A hold may have lifted (the transport's ``wake``; on the event loop)."""
        self.holds.wake()
        self.feed.changed.set()

    @property
    def queues(self) -> dict[str, list[tuple[int, int, Message]]]:
        """Per recipient, the messages in memory: ``(priority, id, message)``, sorted."""
        return self.backlog.queues

    @property
    def pending(self) -> int:
        """Messages to send held in memory (more may wait in the database: ``backlog``)."""
        return len(self.backlog)

    def add(self, messages: list[Message]) -> None:
        """Take messages to send (from the feed)."""
        for m in messages:
            self.backlog.add(m)

    def take_feed(self) -> None:
        """Take what the outbox delivered, release recipients whose marks are stored, and
        read more of a backlog from the database where a window runs low."""
        self.feed.changed.clear()
        if self.gated and self.holds.woken:
            self.holds.refresh()
        if self.feed.backlog:
            self.backlog.mark_backlog(self.feed.backlog)
            self.feed.backlog = []
        self.add(self.feed.take())
        stored = self.feed.marks_stored
        for waiting in (self.uncommitted, self.settling):
            for recipient in [r for r, batch in waiting.items() if batch <= stored]:
                del waiting[recipient]
        self._remove_sent_files()
        for recipient in list(self.backlog.edges):
            # only once its marks are stored: the database must not show sent rows pending
            if recipient not in self.uncommitted and recipient not in self.settling:
                self.backlog.refill(recipient)

    def _remove_sent_files(self) -> None:
        """Remove the files whose sent mark is stored (a crash before: swept at start)."""
        if not self.sent_files or self.files is None:
            return
        stored, waiting = self.feed.marks_stored, []
        for batch, key in self.sent_files:
            if batch <= stored:
                self.files.remove(key)
            else:
                waiting.append((batch, key))
        self.sent_files = waiting

    def backoff(self, attempts: int) -> float:
        return min(2.0 ** (attempts - 1), self.backoff_cap)

    # --- timing ---------------------------------------------------------------------------

    def _ready_at(self, recipient: str) -> float:
        """When ``recipient`` may be sent to (backoff and gap); ``inf`` while the mark of
        their last stored message is not stored yet — unless what waits was never stored
        (sent while the database is locked: a crash cannot repeat it)."""
        if recipient in self.uncommitted and self.queues[recipient][0][2].stored:
            return float("inf")
        gap = self.pacing.per_recipient_gap
        after_gap = self.last_send.get(recipient, float("-inf")) + gap if gap else 0.0
        return max(self.blocked_until.get(recipient, 0.0), after_gap)

    def _global_ready_at(self, now: float) -> float:
        """When the overall per-second / per-minute budget allows the next send."""
        while self.recent and now - self.recent[0] >= 60:
            self.recent.popleft()
        at = now
        p = self.pacing
        if p.per_minute and len(self.recent) >= p.per_minute:
            at = max(at, self.recent[-int(p.per_minute)] + 60)
        if p.per_second:
            last_second = [t for t in self.recent if now - t < 1]
            if len(last_second) >= p.per_second:
                at = max(at, last_second[-int(p.per_second)] + 1)
        return at

    def next_send_at(self) -> float | None:
        """The earliest clock time at which something can be sent (None: nothing to send)."""
        ready = [self._ready_at(r) for r in self.queues]
        if not ready or min(ready) == float("inf"):
            return None
        return max(min(ready), self._global_ready_at(self.clock()))

    # --- sending --------------------------------------------------------------------------

    async def run(self) -> None:
        """Send forever (cancel to stop)."""
        while True:
            self.take_feed()
            if not self.link.ready:
                await self.link.ready_event.wait()
                continue
            at = self.next_send_at()
            now = self.clock()
            if at is None or at > now:
                await wait_event(self.feed.changed, None if at is None else at - now)
                continue
            await self.send_round()
            self.progress.set()
            await asyncio.sleep(0)  # let producers run between rounds

    def _batch(self, recipient: str) -> tuple[str, list[Message], list[Message]]:
        """The next text for ``recipient``: (text, messages it completes, messages it carries).
        While the recipient waits for a mark, only messages never stored go."""
        unstored_only = recipient in self.uncommitted
        queue = self.queues[recipient]
        limit = self.pacing.max_chars
        first = queue[0][2]
        if first.file is not None:  # a file goes alone
            return "", [first], [first]
        if first.id in self.parts or len(first.text) > limit:
            parts = self.parts.get(first.id)
            if parts is None:  # computed once (linear); parts sent before a restart skipped
                split = split_text(first.text, limit, self.pacing.max_parts)
                parts = self.parts[first.id] = split[first.parts_sent :] or [split[-1]]
            return parts[0], ([first] if len(parts) == 1 else []), [first]
        if not self.pacing.coalesce:
            return first.text, [first], [first]
        texts, done, size, parts = [], [], -1, self.parts
        for _, _, m in queue:
            text = m.text
            size += 1 + len(text)
            if size > limit or m.file is not None or (parts and m.id in parts):
                break
            if unstored_only and m.stored:
                break
            texts.append(text)
            done.append(m)
        return "\n".join(texts), done, done

    async def send_round(self) -> int:
        """Send one message to every recipient that may receive one now; returns sends."""
        if not self.link.ready:
            return 0
        now = self.clock()
        order = sorted(
            (q[0][0], q[0][1], r) for r, q in self.queues.items() if self._ready_at(r) <= now
        )
        sends = 0
        for _, _, recipient in order:
            if self._global_ready_at(now) > now or not self.link.ready:
                break
            text, done, carried = self._batch(recipient)
            try:
                address = self.resolve(recipient)
                if address is None:
                    raise LookupError(f"{recipient!r} cannot be reached (unknown or not bound)")
                if self.gated:  # None: held, it waits (Hold.until or a wake)
                    text = self.holds.before_send(recipient, address, text, len(done))
                    if text is None:
                        continue
                if carried[0].file is not None:
                    await self._send_file(address, carried[0])
                else:
                    await self.link.send(address, text)
            except Deferred as exc:  # not the message's fault: no attempt, no backoff
                self.holds.deferred(recipient, address, exc)
                continue
            except Exception as exc:  # the transport's failure: retry later
                self._failed(recipient, carried, exc)
                continue
            sends += 1
            if self.pacing.per_second or self.pacing.per_minute:
                self.recent.append(now)
            self.last_send[recipient] = now
            self.blocked_until.pop(recipient, None)
            if self.gated:
                self.holds.sent(recipient)
            if not done:  # one part of a long message went out: recorded, to resume there
                self.parts[carried[0].id].pop(0)
                carried[0].parts_sent += 1
                batch = self.receipts.mark_part(carried[0])
                if carried[0].stored:
                    self.uncommitted[recipient] = batch
            for m in done:
                self.parts.pop(m.id, None)
            # reported at once: a commit while a later send is awaited must carry this mark
            if done:
                batch = self.receipts.mark_sent([m.id for m in done])
                if any(m.stored for m in done):  # a crash now would repeat it: await the mark
                    self.uncommitted[recipient] = batch
                self.sent_files += [(batch, m.file) for m in done if m.file is not None]
            self._drop(recipient, done)
        return sends

    async def _send_file(self, address: Address, message: Message) -> None:
        assert message.file is not None
        path = self.files.path(message.file) if self.files is not None else None
        if path is None or not path.exists():
            raise Undeliverable(f"the file {message.text} is gone from the data dir")
        try:
            await self.link.send_file(address, path, message.text)
        except NotImplementedError:
            name = getattr(self.link, "name", type(self.link).__name__)
            raise Undeliverable(f"the {name} transport cannot send files") from None

    def _drop(self, recipient: str, messages: list[Message]) -> None:
        self.backlog.drop(recipient, messages)

    def _failed(self, recipient: str, messages: list[Message], exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        dead = []
        for m in messages:
            m.attempts += 1
            is_dead = m.attempts >= self.pacing.max_attempts or isinstance(exc, Undeliverable)
            batch = self.receipts.mark_failed(m, error, is_dead)
            if is_dead:
                dead.append(m)
                if m.stored:  # until the mark is stored the row reads pending: do not reload
                    self.settling[recipient] = batch
        if dead:
            log.error(
                "%d message(s) to %s are dead after %d attempt(s): %s",
                len(dead),
                recipient,
                max(m.attempts for m in dead),
                error,
            )
            for m in dead:
                self.parts.pop(m.id, None)
            self._drop(recipient, dead)
            return
        delay = self.backoff(max(m.attempts for m in messages))
        self.blocked_until[recipient] = self.clock() + delay
        log.warning("send to %s failed (%s); retry in %.0f s", recipient, error, delay)

    # --- stopping -------------------------------------------------------------------------

    async def drain(self, timeout: float, upstream: Callable[[], bool], task: Any = None) -> bool:
        """Wait until nothing is left to send (``upstream()`` False: the outbox holds no
        uncommitted writes) or ``timeout``; True if everything went out. Gives up at once
        when ``task`` (the drainer's) has ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            idle = not self.pending and not self.backlog.in_database and not self.feed.backlog
            if not upstream() and not self.feed.ready and idle:
                return True
            if self.gated and not upstream() and self.holds.stuck(self.feed):
                return False  # what is left waits for a hold to lift
            remaining = deadline - loop.time()
            if remaining <= 0 or (task is not None and task.done()):
                return False
            self.progress.clear()
            await wait_event(self.progress, min(remaining, 0.05))

    @contextlib.asynccontextmanager
    async def running(
        self, drain_timeout: Callable[[], float], upstream: Callable[[], bool]
    ) -> AsyncIterator[asyncio.Task[None]]:
        """Send while the bot runs; at a clean stop, drain first (``drain_timeout()``
        seconds at most; nothing pending is lost: it goes at the next start)."""
        async with background(self.run(), "lcbot-drainer") as task:
            yield task
            drained = await self.drain(drain_timeout(), upstream, task)
            self._remove_sent_files()
            if not drained:
                log.warning(
                    "%d message(s) still pending; they are sent at the next start",
                    self.receipts.pending,
                )
