"""Periodic jobs for plugins, on APScheduler's asyncio scheduler.

``bot.every(seconds, fn)`` and ``bot.cron("*/5 * * * *", fn)``: ``fn`` may be a plain
function (run in the bot's handler threads) or ``async def`` (run on the event loop). A job
that raises is logged with its name and keeps its schedule; a run that would overlap the
previous one is skipped. Jobs are named per plugin; scheduling a name again replaces it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("lcbot.scheduler")


class Job:
    """A scheduled job: ``cancel()`` it, or ``reschedule(seconds)`` an ``every`` job."""

    def __init__(self, job: Any) -> None:
        self._job = job
        self.name: str = job.name

    def cancel(self) -> None:
        self._job.remove()

    def reschedule(self, seconds: float) -> None:
        self._job.reschedule("interval", seconds=seconds)

    @property
    def next_run(self) -> Any:
        return self._job.next_run_time


def _guarded(
    fn: Callable[..., Any], name: str, run_sync: Callable[..., Any] | None = None
) -> Callable[..., Any]:
    if not inspect.iscoroutinefunction(fn) and run_sync is not None:
        plain = fn

        async def fn() -> None:  # plain functions run in the bot's handler threads
            await run_sync(plain)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async() -> None:
            try:
                await fn()
            except Exception:
                log.exception("scheduled job %s failed; it keeps its schedule", name)

        return run_async

    @functools.wraps(fn)
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("scheduled job %s failed; it keeps its schedule", name)

    return run


class Scheduler:
    """Created by the App; APScheduler is imported on the first job only."""

    def __init__(self) -> None:
        self._scheduler: Any = None
        self._loop: Any = None
        self._run_sync: Callable[..., Any] | None = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._scheduler is None:
                import asyncio

                from apscheduler.schedulers.asyncio import AsyncIOScheduler

                loop = self._loop or asyncio.get_running_loop()
                self._scheduler = AsyncIOScheduler(event_loop=loop)
                self._scheduler.start()
            return self._scheduler

    def _add(self, fn: Callable[..., Any], trigger: Any, name: str | None, owner: str, **kw: Any):
        name = name or getattr(fn, "__qualname__", repr(fn))
        job = self._get().add_job(
            _guarded(fn, name, self._run_sync),
            trigger,
            id=f"{owner}:{name}",
            name=name,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            **kw,
        )
        return Job(job)

    def every(
        self, seconds: float, fn: Callable[..., Any], name: str | None = None, owner: str = ""
    ) -> Job:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(f"every(): seconds must be a number > 0, not {seconds!r}")
        return self._add(fn, "interval", name, owner, seconds=seconds)

    def cron(
        self, expression: str, fn: Callable[..., Any], name: str | None = None, owner: str = ""
    ) -> Job:
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(expression)  # ValueError on a bad expression
        return self._add(fn, trigger, name, owner)

    def cancel_owner(self, owner: str) -> None:
        """Remove every job of ``owner`` (a plugin that was disabled)."""
        with self._lock:
            scheduler = self._scheduler
        if scheduler is None:
            return
        for job in scheduler.get_jobs():
            if job.id.startswith(f"{owner}:"):
                job.remove()

    @contextlib.contextmanager
    def running(self, loop: Any, run_sync: Callable[..., Any]) -> Iterator[None]:
        """Jobs run on ``loop`` (they may be added from any thread); plain functions through
        ``run_sync`` (the bot's handler threads, which never block exit). Stops all jobs at
        the end."""
        self._loop, self._run_sync = loop, run_sync
        try:
            yield
        finally:
            with self._lock:
                if self._scheduler is not None:
                    self._scheduler.shutdown(wait=False)
                    self._scheduler = None
