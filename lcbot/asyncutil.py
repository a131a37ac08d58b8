"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any


async def wait_event(event: asyncio.Event, timeout: float | None) -> None:
    """Wait until ``event`` is set, or set it after ``timeout`` seconds and return.

    For wake-up events whose waiter clears them anyway. Unlike ``asyncio.wait_for(event.
    wait(), …)`` this needs no inner task, so cancelling the waiter at shutdown is
    immediate (a cancelled ``wait_for`` was seen to hang there on Python 3.11).
    """
    if timeout is None:
        await event.wait()
        return
    timer = asyncio.get_running_loop().call_later(max(timeout, 0.0), event.set)
    try:
        await event.wait()
    finally:
        timer.cancel()


class Waker:
    """An ``asyncio.Event`` that any thread may set: ``wake()`` is cheap when it is set already.

    Bound to the running loop by ``bind()`` (in the owner's start); before that, and after
    the loop has closed, ``wake()`` does nothing.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        self._loop = asyncio.get_running_loop()

    def wake(self) -> None:
        loop = self._loop
        if loop is None or self.event.is_set():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self.event.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: the bot is gone
            loop.call_soon_threadsafe(self.event.set)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until woken (or ``timeout``), then clear for the next round."""
        await wait_event(self.event, timeout)
        self.event.clear()


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, Any], name: str) -> AsyncIterator[asyncio.Task]:
    """Run ``coro`` as a task for the ``async with`` block (which gets the task); at the end
    the task is cancelled and awaited."""
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def poll_loop(
    waker: Waker, every: float, step: Callable[[], Any], log: logging.Logger, what: str
) -> None:
    """Run ``step`` whenever ``waker`` is woken, or ``every`` seconds passed, for ever; a
    round that raises is logged (``could not WHAT; retrying``) and the next waits 1 s."""
    while True:
        await waker.wait(every)
        try:
            step()
        except Exception:
            log.exception("could not %s; retrying", what)
            await asyncio.sleep(1)
