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
  crash can repeat at most one (coalesced) message per recipient.
* **Retry**: a failed send blocks that recipient with exponential backoff (1 s, 2 s, 4 s …
  up to ``backoff_cap``); after ``max_attempts`` the rows are marked ``dead`` (kept,
  retryable with ``lcbot outbox retry``). Nothing is sent while the transport is down.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lcbot.asyncutil import wait_event
from lcbot.errors import ConfigError
from lcbot.outbox import Message, Outbox
from lcbot.transports.base import Transport

log = logging.getLogger("lcbot.drainer")

WECHAT_PACE = {"per_second": 1, "per_minute": 40, "per_recipient_gap": 3}


@dataclass(frozen=True)
class Pacing:
    """``[ratelimit]``: pace, message size and retry limits for outgoing messages."""

    per_second: float = 0
    per_minute: float = 0
    per_recipient_gap: float = 0
    max_chars: int = 2000
    max_attempts: int = 20

    @classmethod
    def from_config(cls, section: dict[str, Any], paced: bool, where: str) -> Pacing:
        """WeChat's defaults for a paced transport, no pacing otherwise; the section wins."""
        values: dict[str, Any] = dict(WECHAT_PACE) if paced else {}
        for name in ("per_second", "per_minute", "per_recipient_gap", "max_chars", "max_attempts"):
            if name not in section:
                continue
            value = section[name]
            kind = int | float if name == "per_recipient_gap" else int
            if isinstance(value, bool) or not isinstance(value, kind) or value < 0:
                raise ConfigError(
                    f"{where}: ratelimit.{name}: expected a "
                    f"{'number' if name == 'per_recipient_gap' else 'whole number'} ≥ 0, "
                    f"got {value!r}"
                )
            values[name] = value
        unknown = set(section) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"{where}: ratelimit: unknown key(s) {sorted(unknown)}")
        pacing = cls(**values)
        if pacing.max_chars < 20 or pacing.max_attempts < 1:
            raise ConfigError(f"{where}: ratelimit: max_chars must be ≥ 20, max_attempts ≥ 1")
        return pacing


def split_text(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into parts of at most ``max_chars``, at line breaks where possible."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > max_chars:  # a single over-long line: hard cut
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:max_chars])
            line = line[max_chars:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > max_chars:
            parts.append(current)
            current = line
        else:
            current = candidate
    parts.append(current)
    return parts


class Drainer:
    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        pacing: Pacing | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff_cap: float = 300.0,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.pacing = pacing or Pacing()
        self.clock = clock
        self.backoff_cap = backoff_cap
        self.queues: dict[str, list[tuple[int, int, Message]]] = {}  # (priority, id, message)
        self.blocked_until: dict[str, float] = {}  # backoff after failures
        self.last_send: dict[str, float] = {}  # per-recipient gap
        self.recent: deque[float] = deque()  # send times within the last minute
        self.uncommitted: set[str] = set()  # sent, but the mark is not committed yet
        self.parts: dict[int, list[str]] = {}  # message id → parts still to send
        self.wake = asyncio.Event()
        self.progress = asyncio.Event()  # set after each round; App.drain waits on it

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def add(self, messages: Iterable[Message]) -> None:
        """Take stored messages (from ``Outbox.open`` / ``flush`` / ``take_retries``)."""
        added = False
        for m in messages:
            bisect.insort(self.queues.setdefault(m.recipient, []), (m.priority, m.id, m))
            added = True
        if added:
            self.wake.set()

    def committed(self) -> None:
        """The outbox committed every sent mark reported so far: recipients may go on."""
        if self.uncommitted:
            self.uncommitted.clear()
            self.wake.set()

    def backoff(self, attempts: int) -> float:
        return min(2.0 ** (attempts - 1), self.backoff_cap)

    # --- timing ---------------------------------------------------------------------------

    def _ready_at(self, recipient: str) -> float:
        """When ``recipient`` may be sent to (backoff and gap); ``inf`` while uncommitted."""
        if recipient in self.uncommitted:
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
            if not self.transport.ready:
                await self.transport.ready_event.wait()
                continue
            at = self.next_send_at()
            now = self.clock()
            if at is None or at > now:
                self.wake.clear()
                timeout = None if at is None else at - now
                await wait_event(self.wake, timeout)
                continue
            await self.send_round()
            self.progress.set()
            await asyncio.sleep(0)  # let producers run between rounds

    def _batch(self, recipient: str) -> tuple[str, list[Message], list[Message]]:
        """The next text for ``recipient``: (text, messages it completes, messages it carries)."""
        queue = self.queues[recipient]
        limit = self.pacing.max_chars
        first = queue[0][2]
        if first.id in self.parts or len(first.text) > limit:
            parts = self.parts.setdefault(first.id, split_text(first.text, limit))
            return parts[0], ([first] if len(parts) == 1 else []), [first]
        texts, done, size = [], [], -1
        for _, _, m in queue:
            if size + 1 + len(m.text) > limit or m.id in self.parts:
                break
            texts.append(m.text)
            done.append(m)
            size += 1 + len(m.text)
        return "\n".join(texts), done, done

    async def send_round(self) -> int:
        """Send one message to every recipient that may receive one now; returns sends."""
        if not self.transport.ready:
            return 0
        now = self.clock()
        order = sorted(
            (q[0][0], q[0][1], r) for r, q in self.queues.items() if self._ready_at(r) <= now
        )
        sent_ids: list[int] = []
        sends = 0
        for _, _, recipient in order:
            if self._global_ready_at(now) > now or not self.transport.ready:
                break
            text, done, carried = self._batch(recipient)
            try:
                await self.transport.send(recipient, text)
            except Exception as exc:  # the transport's failure: retry later
                self._failed(recipient, carried, exc)
                continue
            sends += 1
            if self.pacing.per_second or self.pacing.per_minute:
                self.recent.append(now)
            self.last_send[recipient] = now
            self.blocked_until.pop(recipient, None)
            self.uncommitted.add(recipient)
            if not done:  # one part of a long message went out
                self.parts[carried[0].id].pop(0)
            for m in done:
                self.parts.pop(m.id, None)
            # report at once: a commit that happens while a later send is awaited must
            # include this mark before ``committed()`` releases the recipient
            self.outbox.mark_sent([m.id for m in done])
            sent_ids.extend(m.id for m in done)
            self._drop(recipient, done)
        if sent_ids:
            self.outbox.on_put()
        return sends

    def _drop(self, recipient: str, messages: list[Message]) -> None:
        if not messages:
            return
        gone = {m.id for m in messages}
        queue = [entry for entry in self.queues[recipient] if entry[1] not in gone]
        if queue:
            self.queues[recipient] = queue
        else:
            del self.queues[recipient]

    def _failed(self, recipient: str, messages: list[Message], exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        dead = []
        for m in messages:
            m.attempts += 1
            is_dead = m.attempts >= self.pacing.max_attempts
            self.outbox.mark_failed(m, error, is_dead)
            if is_dead:
                dead.append(m)
        if dead:
            log.error(
                "%d message(s) to %s are dead after %d attempts: %s",
                len(dead),
                recipient,
                self.pacing.max_attempts,
                error,
            )
            for m in dead:
                self.parts.pop(m.id, None)
            self._drop(recipient, dead)
            self.outbox.on_put()
            return
        delay = self.backoff(max(m.attempts for m in messages))
        self.blocked_until[recipient] = self.clock() + delay
        log.warning("send to %s failed (%s); retry in %.0f s", recipient, error, delay)
        self.outbox.on_put()
