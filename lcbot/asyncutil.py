"""Small asyncio helpers."""

from __future__ import annotations

import asyncio


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
