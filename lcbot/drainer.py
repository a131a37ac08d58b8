"""The drainer: sends stored outbox messages through the transport.

Per recipient, messages leave in order (oldest first); recipients take turns. A message
is reported sent only after ``transport.send`` returned. A failed send blocks that
recipient with exponential backoff (1 s, 2 s, 4 s … capped) and is retried; after
``max_attempts`` the row is marked ``dead`` (kept in the database, retryable) and the
next message goes. Nothing is sent while the transport is not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

from lcbot.outbox import Message, Outbox
from lcbot.transports.base import Transport

log = logging.getLogger("lcbot.drainer")


class Drainer:
    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        clock: Callable[[], float] = time.monotonic,
        max_attempts: int = 20,
        backoff_cap: float = 300.0,
        burst: int = 32,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_cap = backoff_cap
        self.burst = burst  # messages one recipient may send per round (no pacing yet)
        self.queues: dict[str, deque[Message]] = {}
        self.blocked_until: dict[str, float] = {}
        self.wake = asyncio.Event()
        self.progress = asyncio.Event()  # set after each round; drain() waits on it

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def add(self, messages: Iterable[Message]) -> None:
        """Take stored messages (from ``Outbox.open`` or ``Outbox.flush``)."""
        added = False
        for message in messages:
            self.queues.setdefault(message.recipient, deque()).append(message)
            added = True
        if added:
            self.wake.set()

    def backoff(self, attempts: int) -> float:
        return min(2.0 ** (attempts - 1), self.backoff_cap)

    async def run(self) -> None:
        """Send forever (cancel to stop)."""
        while True:
            await self._wait_for_work()
            await self.send_round()
            self.progress.set()
            await asyncio.sleep(0)  # let producers run between rounds

    async def _wait_for_work(self) -> None:
        while True:
            if not self.transport.ready:
                await self.transport.ready_event.wait()
                continue
            now = self.clock()
            waits = [self.blocked_until.get(r, 0.0) - now for r in self.queues]
            if any(w <= 0 for w in waits):
                return
            self.wake.clear()
            timeout = min(waits) if waits else None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)

    async def send_round(self) -> int:
        """Send up to ``burst`` messages of every recipient that may send now."""
        now = self.clock()
        sent: list[int] = []
        for recipient in list(self.queues):
            queue = self.queues[recipient]
            for _ in range(self.burst):
                if not queue or not await self._send_one(recipient, queue, now, sent):
                    break
            if not queue:
                del self.queues[recipient]
        if sent:
            self.outbox.mark_sent(sent)
            self.outbox.on_put()
        return len(sent)

    async def _send_one(
        self, recipient: str, queue: deque[Message], now: float, sent: list[int]
    ) -> bool:
        """Send the head of ``queue``; True if the next message may follow in this round."""
        if self.blocked_until.get(recipient, 0.0) > now or not self.transport.ready:
            return False
        message = queue[0]
        try:
            await self.transport.send(recipient, message.text)
        except Exception as exc:  # the transport's failure: retry later
            message.attempts += 1
            error = f"{type(exc).__name__}: {exc}"
            dead = message.attempts >= self.max_attempts
            self.outbox.mark_failed(message, error, dead)
            if dead:
                log.error(
                    "message %d to %s is dead after %d attempts: %s",
                    message.id,
                    recipient,
                    message.attempts,
                    error,
                )
                queue.popleft()
                return False
            delay = self.backoff(message.attempts)
            self.blocked_until[recipient] = self.clock() + delay
            log.warning("send to %s failed (%s); retry in %.0f s", recipient, error, delay)
            return False
        queue.popleft()
        self.blocked_until.pop(recipient, None)
        sent.append(message.id)
        return True
