"""Re-notification and escalation of unacknowledged critical alerts.

``Escalator.tick`` looks at the firing alerts (``lcbot.firing``): an unacknowledged
critical alert is sent again to its recipients every ``[alerts] renotify`` and, every
``[alerts] escalate_after``, takes the next step of ``[alerts] escalation`` (a privilege
name: every user with at least that privilege; else a user name): the step's new
recipients get the alert, those who had it are told "escalated to …". The step taken and
the next due times are part of the firing alert's row, so a restart resumes where it was
and sends nothing twice. The clock is injected (tests move it); ``running`` ticks on the
event loop every ``TICK`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from lcbot.alerts import PRIORITY
from lcbot.asyncutil import Waker, background, poll_loop
from lcbot.durations import format_duration
from lcbot.firing import CRITICAL, Firing, FiringAlert, Writer
from lcbot.users import Directory, Pri, User

log = logging.getLogger("lcbot.escalation")

TICK = 1.0  # seconds between looks at the due times


class People(Protocol):
    """Who may be reached (the roster)."""

    directory: Directory

    def reachable(self, user: User) -> bool: ...


def step_users(entry: str, directory: Directory) -> list[User]:
    """The users one escalation step names: a privilege (``admin``: admins and root) or
    one user; empty (logged) for a name that is neither."""
    if entry.strip().upper() in Pri.__members__:
        least = Pri.parse(entry)
        return [u for u in directory if u.pri <= least]
    user = directory.by_name(entry)
    if user is None:
        log.warning("[alerts] escalation: no user or privilege %r (step skipped)", entry)
        return []
    return [user]


def next_due(due: float, every: float, now: float) -> float:
    """The first ``due + k·every`` after ``now`` (a bot stopped for a while catches up once)."""
    if due > now:
        return due
    return due + every * (int((now - due) // every) + 1)


class Escalator:
    """Advances re-notification and escalation of the firing alerts."""

    def __init__(
        self,
        firing: Firing,
        people: People,
        writer: Writer,
        muted: Callable[[str], bool] = lambda name: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.firing = firing
        self.timing = firing.timing
        self.people = people
        self.writer = writer
        self.muted = muted  # a user's mute in force
        self.clock = clock
        self.waker = Waker()

    def tick(self) -> int:
        """Send what is due now; returns how many alerts re-notified or escalated."""
        now = self.clock()
        count = 0
        with self.firing.lock:
            for f in list(self.firing.items.values()):
                if f.acked_by is not None or f.level != CRITICAL:
                    continue
                fresh: list[str] = []
                changed = False
                if f.next_escalate is not None and f.next_escalate <= now:
                    fresh = self._escalate(f, now)
                    changed = True
                if f.next_renotify is not None and f.next_renotify <= now:
                    self._renotify(f, now, skip=fresh)
                    changed = True
                if changed:
                    self.firing.save(f)
                    count += 1
        return count

    def _renotify(self, f: FiringAlert, now: float, skip: list[str]) -> None:
        every = self.timing.renotify
        age = format_duration(max(1.0, now - f.first_seen))
        text = (
            f"{f.level.upper()} #{f.id} {f.body} (unacknowledged for {age}; ack {f.id} to take it)"
        )
        self._send([r for r in f.recipients if r not in skip], text, f.level)
        f.next_renotify = next_due(f.next_renotify or now, every, now) if every else None

    def _escalate(self, f: FiringAlert, now: float) -> list[str]:
        steps = self.timing.escalation
        after = self.timing.escalate_after
        directory = self.people.directory
        fresh: list[str] = []
        while not fresh and f.step < len(steps):  # a step that adds nobody: the next one
            entry = steps[f.step]
            f.step += 1
            for user in step_users(entry, directory):
                if user.name not in f.recipients and user.name not in fresh:
                    fresh.append(user.name)
        more = f.step < len(steps)
        f.next_escalate = next_due(f.next_escalate or now, after, now) if more else None
        if not fresh:
            return []
        age = format_duration(max(1.0, now - f.first_seen))
        text = (
            f"{f.level.upper()} #{f.id} {f.body} (escalated to you: unacknowledged for {age}; "
            f"ack {f.id} to take it)"
        )
        self._send(fresh, text, f.level)
        self._send(
            list(f.recipients), f"{f.name} escalated to {', '.join(fresh)}", f.level, "notice"
        )
        f.recipients.extend(fresh)
        log.info("alert %s escalated (step %d) to %s", f.name, f.step, ", ".join(fresh))
        return fresh

    def _send(self, names: list[str], text: str, level: str, kind: str = "") -> None:
        directory = self.people.directory
        for name in names:
            if not name.startswith("room:"):
                user = directory.by_name(name)
                if user is None or not self.people.reachable(user) or self.muted(name):
                    continue
            self.writer.put(name, text, kind or f"alert:{level}", PRIORITY.get(level, 0))

    # --- running ----------------------------------------------------------------------

    async def run(self) -> None:
        await poll_loop(self.waker, TICK, self.tick, log, "re-notify or escalate alerts")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        """Tick while the bot runs (what fell due while it was stopped goes out now)."""
        self.waker.bind()
        self.tick()
        async with background(self.run(), "lcbot-escalation") as task:
            yield task
