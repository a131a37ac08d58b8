"""A bounded thread pool for plain-def handlers, tuned for many short calls.

Like ``loop.run_in_executor`` on a ThreadPoolExecutor, but workers report finished calls
in batches: one ``call_soon_threadsafe`` wakes the event loop for every call that
completed meanwhile, instead of one wake-up per call. Threads are started once
(``size`` of them), never one per message.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

_STOP = object()


class HandlerFailed(Exception):
    """A handler ended with something that is not an ordinary exception (the cause):
    ``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``, ``StopIteration``…"""

    @classmethod
    def of(cls, exc: BaseException) -> HandlerFailed:
        failed = cls(str(exc) or f"{type(exc).__name__} raised by the handler")
        failed.__cause__ = exc
        return failed


def call(fn: Callable[[Any], Any], arg: Any) -> tuple[bool, Any]:
    """``(True, fn(arg))``, or ``(False, the exception)``: anything a handler raises becomes
    an ordinary exception (``HandlerFailed`` for what must not reach the event loop)."""
    try:
        return True, fn(arg)
    except (StopIteration, StopAsyncIteration) as exc:  # futures cannot hold these
        return False, HandlerFailed(f"{type(exc).__name__} raised by the handler")
    except Exception as exc:
        return False, exc
    except BaseException as exc:  # KeyboardInterrupt, SystemExit: must not reach the loop
        return False, HandlerFailed.of(exc)


class HandlerPool:
    def __init__(self, size: int, name: str = "lcbot-handler") -> None:
        self.size = size
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done: deque[tuple[asyncio.Future[Any], bool, Any]] = deque()
        self._done_lock = threading.Lock()
        self._wake_pending = False
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
        """Run ``fn(arg)`` in a worker thread; returns a future of the event loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
        if not self._threads:
            self._start()
        future = loop.create_future()
        self._jobs.put((fn, arg, future))
        return future

    def _start(self) -> None:
        for i in range(self.size):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            fn, arg, future = job
            result = call(fn, arg)
            with self._done_lock:
                self._done.append((future, *result))
                if self._wake_pending:
                    continue
                self._wake_pending = True
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # loop closed during shutdown
                return

    def _deliver(self) -> None:
        with self._done_lock:
            done, self._done = self._done, deque()
            self._wake_pending = False
        for future, ok, value in done:
            if future.cancelled():
                continue
            try:
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            except Exception as exc:  # never leave the rest of the batch unresolved
                future.set_exception(RuntimeError(f"handler result lost: {exc!r}"))

    def shutdown(self) -> None:
        """Stop the workers after the calls already queued (does not wait for them)."""
        for _ in self._threads:
            self._jobs.put(_STOP)
        self._threads = []
