"""Retention: old history is deleted in small batches while the bot runs (``[storage] keep``).

Each job looks at most at ``BATCH`` rows per call and returns how many it deleted and
whether more may be left; a round calls it again while there is (at most ``MAX_BATCHES``
times), yielding to the event loop in between, so a large backlog never blocks the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from lcbot.asyncutil import background

log = logging.getLogger("lcbot.retention")

EVERY = 60.0  # seconds between rounds
FIRST = 5.0  # seconds after start for the first round
BATCH = 500
MAX_BATCHES = 100

Job = Callable[[float, int], tuple[int, bool]]  # (now, limit) → (deleted, more left)


class Retention:
    def __init__(self, jobs: list[Job], clock: Callable[[], float] = time.time) -> None:
        self.jobs = jobs
        self.clock = clock

    async def round(self) -> int:
        """One pass over every job; returns the rows deleted."""
        total = 0
        for job in self.jobs:
            for _ in range(MAX_BATCHES):
                deleted, more = job(self.clock(), BATCH)
                total += deleted
                if not more:
                    break
                await asyncio.sleep(0)
        if total:
            log.info("retention: %d old row(s) deleted", total)
        return total

    async def run(self) -> None:
        await asyncio.sleep(FIRST)
        while True:
            try:
                await self.round()
            except Exception:
                log.exception("retention round failed; trying again later")
            await asyncio.sleep(EVERY)

    def running(self) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
        return background(self.run(), "lcbot-retention")
