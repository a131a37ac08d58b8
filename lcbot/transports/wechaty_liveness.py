"""Notice a puppet connection that is up but deaf (python-wechaty #280).

Every event on the stream (heartbeats, messages, dongs…) counts as a sign of life. With
none for ``[wechaty] liveness`` seconds, or right after a send timed out, the puppet is
probed with a ding, which it answers with a dong event; without an answer within
``PROBE_TIMEOUT`` the connection is dropped and the supervisor reconnects. The same
watch covers a connection attempt that never gets its first event (a frozen server
accepts TCP connections but answers nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("lcbot.wechaty")

PROBE_TIMEOUT = 10.0  # seconds a ding may take to be answered


class Liveness:
    def __init__(
        self,
        quiet_limit: float,
        ding: Callable[[], Awaitable[None]],
        reconnect: Callable[[str], None],
        attached: Callable[[], None] = lambda: None,
    ) -> None:
        self.quiet_limit = quiet_limit
        self.attached = attached  # called at a connection's first event
        self.ding = ding
        self.reconnect = reconnect
        self.last_event: float | None = None  # monotonic time of the last event
        self.connected_at: float | None = None
        self.probes = 0
        self.failed_probes = 0
        self.last_probe: str | None = None
        self._suspect = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="lcbot-wechaty-liveness")

    async def stop(self) -> None:
        self._stopped = True  # also ends the loop if a cancel is lost (wait_for, < 3.12)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def connecting(self, puppet: Any) -> None:
        """Watch the event stream of a new connection (every event is a sign of life)."""
        self.connected_at = time.monotonic()
        self.last_event = None
        stream = puppet._event_stream
        emit = stream.emit

        def emit_and_note(event: str, *args: Any, **kwargs: Any) -> Any:
            first = self.last_event is None
            self.last_event = time.monotonic()
            if first:
                self.attached()
            return emit(event, *args, **kwargs)

        stream.emit = emit_and_note

    def disconnected(self) -> None:
        self.connected_at = None

    def suspect(self) -> None:
        """Probe now (a send did not complete)."""
        self._suspect.set()

    def _quiet_for(self) -> float | None:
        if self.connected_at is None:
            return None
        return time.monotonic() - (self.last_event or self.connected_at)

    async def _watch(self) -> None:
        tick = min(self.quiet_limit / 4, 5.0)
        while not self._stopped:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._suspect.wait(), tick)
            suspect = self._suspect.is_set()
            self._suspect.clear()
            quiet = self._quiet_for()
            if quiet is None or (quiet < self.quiet_limit and not suspect):
                continue
            await self._probe(quiet)

    async def _probe(self, quiet: float) -> None:
        self.probes += 1
        asked = time.monotonic()
        log.info("no event from the puppet service for %.0f s: probing it (ding)", quiet)
        try:
            await asyncio.wait_for(self.ding(), PROBE_TIMEOUT)
            while (self.last_event or 0) < asked:
                if time.monotonic() - asked > PROBE_TIMEOUT:
                    raise asyncio.TimeoutError
                await asyncio.sleep(0.05)
        except Exception as exc:
            self.failed_probes += 1
            self.last_probe = "no answer" if isinstance(exc, asyncio.TimeoutError) else str(exc)
            if self.connected_at is not None:
                self.reconnect(
                    f"the puppet service did not answer a ding within {PROBE_TIMEOUT:.0f} s"
                )
            return
        self.last_probe = "answered"
        log.info("the puppet service answered the ding")

    def status(self) -> dict[str, Any]:
        quiet = self._quiet_for()
        return {
            "quiet_seconds": None if quiet is None else round(quiet, 1),
            "probes": self.probes,
            "failed_probes": self.failed_probes,
            "last_probe": self.last_probe,
        }
