"""The loop watchdog: notices when the event loop is blocked (an ``async def`` handler that
calls ``time.sleep`` or does heavy work) and says who holds it.

The loop ticks a heartbeat every ``TICK`` seconds; a daemon thread looks at it. When the
loop has not ticked for ``BLOCKED`` seconds, the thread logs once which handler is running
on the loop (``describe`` reads the loop thread's stack), and keeps calling ``while_blocked``
(the "still running…" notices still go out), until the loop ticks again; then it logs how
long the block lasted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

log = logging.getLogger("lcbot.watchdog")

TICK = 0.1  # seconds between heartbeats of the loop
BLOCKED = 1.0  # seconds without a heartbeat: the loop is blocked


class LoopWatchdog:
    def __init__(
        self,
        describe: Callable[[FrameType | None], str | None],
        while_blocked: Callable[[], None] = lambda: None,
        blocked: float = BLOCKED,
    ) -> None:
        self.describe = describe  # the loop thread's frame → who is running there
        self.while_blocked = while_blocked
        self.blocked = blocked
        self.beat = time.monotonic()
        self.blocks = 0  # blocks seen (for tests and logs)
        self._stop = threading.Event()

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.beat = time.monotonic()
        if not self._stop.is_set():
            loop.call_later(TICK, self._tick, loop)

    def _watch(self, thread_id: int) -> None:
        since: float | None = None
        while not self._stop.wait(TICK):
            idle = time.monotonic() - self.beat
            if idle < self.blocked:
                if since is not None:
                    log.warning("the event loop was blocked for %.1f s", time.monotonic() - since)
                    since = None
                continue
            if since is None:
                since = self.beat
                self.blocks += 1
                who = self.describe(sys._current_frames().get(thread_id))
                log.warning(
                    "the event loop is blocked (%.1f s so far) by %s: async handlers must not "
                    "block (await, or use a plain def, which runs in a thread)",
                    idle,
                    f"the async handler {who}" if who else "code on the loop",
                )
            try:
                self.while_blocked()
            except Exception:
                log.exception("while the loop is blocked")

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Watch the running loop for the block's duration."""
        loop = asyncio.get_running_loop()
        self.beat = time.monotonic()
        self._stop.clear()
        loop.call_soon(self._tick, loop)
        thread = threading.Thread(
            target=self._watch, args=(threading.get_ident(),), name="lcbot-watchdog", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(1)
