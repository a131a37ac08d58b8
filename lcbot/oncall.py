"""Who is on call: ``[oncall] rota``, ``handover``, ``timezone``, and ``oncall take``.

The rota hands over at a wall-clock time of its time zone — weekly (``"mon 09:00"``) or
daily (``"09:00"``, ``"daily 09:00"``) — so a handover stays at 09:00 across daylight-saving
changes. Handovers are counted from the first one on or after 1970-01-05 (a Monday): at
each, the next user of the rota takes over, in order, round and round. ``oncall take`` (an
admin) overrides the rota until the next handover; the override is a row of
``oncall_override`` written through the outbox's writer, so a restart keeps it.

The router asks ``on_call(now)`` for each critical alert and puts that user first among
its recipients, whether or not their routes include it; everyone else keeps their routes.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lcbot.errors import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ANCHOR = dt.date(1970, 1, 5)  # a Monday: handovers are counted from here
_HANDOVER = re.compile(r"(?:(mon|tue|wed|thu|fri|sat|sun|daily)\s+)?([01]?\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class Handover:
    """When the rota moves on: ``weekday`` (0 = Monday; None: every day) at ``hour:minute``."""

    weekday: int | None
    hour: int
    minute: int

    @classmethod
    def parse(cls, text: str) -> Handover:
        """``"mon 09:00"``, ``"daily 09:00"`` or ``"09:00"``; ``ValueError`` otherwise."""
        found = _HANDOVER.fullmatch(text.strip().lower()) if isinstance(text, str) else None
        if found is None:
            raise ValueError(f"expected a handover such as mon 09:00 or 09:00, got {text!r}")
        day, hour, minute = found.groups()
        weekday = None if day in (None, "daily") else WEEKDAYS.index(day)
        return cls(weekday, int(hour), int(minute))

    def __str__(self) -> str:
        day = "daily" if self.weekday is None else WEEKDAYS[self.weekday]
        return f"{day} {self.hour:02d}:{self.minute:02d}"


@dataclass(frozen=True)
class Shift:
    """Who is on call from ``start`` to ``until`` (epoch seconds); ``by``: who took it over
    (None: the rota's turn)."""

    user: str | None
    start: float
    until: float
    by: str | None = None


class Rota:
    """The rota's turns: pure, from epoch seconds (``zone`` None: the machine's local time)."""

    def __init__(self, users: Iterable[str], handover: Handover, zone: ZoneInfo | None) -> None:
        self.users = tuple(users)
        self.handover = handover
        self.zone = zone

    @property
    def zone_name(self) -> str:
        return self.zone.key if self.zone is not None else (time.tzname[0] or "local time")

    def local(self, epoch: float) -> dt.datetime:
        """``epoch`` as the rota's wall-clock time."""
        return dt.datetime.fromtimestamp(epoch, self.zone)

    def _at(self, day: dt.date) -> float:
        wall = dt.datetime.combine(day, dt.time(self.handover.hour, self.handover.minute))
        return wall.replace(tzinfo=self.zone).timestamp()  # naive: local time, DST included

    def shift(self, now: float) -> Shift:
        """The turn ``now`` falls in: its user (None for an empty rota), start and end."""
        step = 1 if self.handover.weekday is None else 7
        day = self.local(now).date()
        if self.handover.weekday is not None:
            day -= dt.timedelta(days=(day.weekday() - self.handover.weekday) % 7)
        if self._at(day) > now:
            day -= dt.timedelta(days=step)
        turn = (day - ANCHOR).days // step
        user = self.users[turn % len(self.users)] if self.users else None
        return Shift(user, self._at(day), self._at(day + dt.timedelta(days=step)))


def rota_from_settings(section: dict[str, Any], users: Iterable[str], where: str) -> Rota:
    """The checked ``[oncall]`` values as a ``Rota``; ConfigError naming the file and key
    for an unknown user, a bad handover or an unknown time zone."""
    known = set(users)
    for name in section["rota"]:
        if name not in known:
            raise ConfigError(f"{where}: oncall.rota: no user named {name!r} in [[users]]")
    try:
        handover = Handover.parse(section["handover"])
    except ValueError as exc:
        raise ConfigError(f"{where}: oncall.handover: {exc}") from None
    zone = None
    if section["timezone"]:
        try:
            zone = ZoneInfo(section["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{where}: oncall.timezone: unknown time zone {section['timezone']!r} "
                "(expected a name such as Asia/Shanghai)"
            ) from None
    return Rota(section["rota"], handover, zone)


def put_first(users: list[Any], on_call: Any) -> list[Any]:
    """``users`` with ``on_call`` first (added when missing; None: unchanged)."""
    if on_call is None:
        return users
    return [on_call, *(u for u in users if u != on_call)]


class OnCall:
    """The running bot's on-call state: the rota, and the override stored in SQLite.
    ``take`` and ``shift`` are safe from any thread (chat handlers run in threads)."""

    def __init__(
        self,
        rota: Rota,
        record: Callable[..., None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rota = rota
        self.record = record  # the outbox's writer
        self.clock = clock
        self._override: Shift | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_config(cls, config: Any, record: Callable[..., None]) -> OnCall:
        """From a loaded ``Config`` (``[oncall]`` and its users)."""
        names = [u.name for u in config.users]
        return cls(rota_from_settings(config.settings["oncall"], names, str(config.path)), record)

    def open(self, conn: Any) -> None:
        """Load the override in force (``oncall take`` before a restart)."""
        from lcbot.db import oncall as sql

        found = sql.load_override(conn, self.clock())
        if found is not None:
            user, until, by = found
            self._override = Shift(user, self.clock(), until, by)

    def shift(self, now: float | None = None) -> Shift:
        """Who is on call at ``now`` (default: the clock), and until when."""
        now = self.clock() if now is None else now
        with self._lock:
            override = self._override
        if override is not None and now < override.until:
            return override
        return self.rota.shift(now)

    def on_call(self, now: float | None = None) -> str | None:
        """The user on call at ``now`` (None: an empty rota and no override)."""
        return self.shift(now).user

    def take(self, user: str, by: str | None = None) -> Shift:
        """``user`` is on call until the next handover (stored: a restart keeps it)."""
        from lcbot.db import oncall as sql

        now = self.clock()
        shift = Shift(user, now, self.rota.shift(now).until, by or user)
        with self._lock:
            self._override = shift
        self.record(sql.save_override, user, shift.until, shift.by, now)
        return shift

    def describe(self, now: float | None = None) -> str:
        """The chat answer of ``oncall``: who, until when (rota time zone), the rota order."""
        shift = self.shift(now)
        until = self.rota.local(shift.until).strftime("%a %d %b %H:%M")
        zone = self.rota.zone_name
        if shift.user is None:
            who = "nobody is on call (no [oncall] rota)"
        elif shift.by is not None:
            who = f"on call: {shift.user} until {until} ({zone}), taken over by {shift.by}"
        else:
            who = f"on call: {shift.user} until {until} ({zone})"
        rota = " → ".join(self.rota.users) if self.rota.users else "empty"
        return f"{who}\nrota: {rota} (handover {self.rota.handover})"
