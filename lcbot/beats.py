"""Heartbeats as values: ``Heartbeat``, the checks of a beat (``check_beat``,
``InvalidBeat``), its deadline and the alert texts. No I/O and no asyncio: the CLI, the
HTTP listener and the running bot's ``lcbot.heartbeats.Heartbeats`` share it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from lcbot.alerts import check_level
from lcbot.durations import MAX, format_duration, parse_duration

MAX_KEY = 100
KEY_PREFIX = "heartbeat:"  # the alert key of heartbeat KEY is heartbeat:KEY
_KEY = re.compile(rf"\w[\w.:@-]{{0,{MAX_KEY - 1}}}")


class InvalidBeat(ValueError):
    """A beat that cannot be recorded; ``field`` names the culprit (``key``, ``every``,
    ``grace``, ``level``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def check_key(key: Any) -> str:
    """``key`` if it names a heartbeat (letters, digits, ``_ . : @ -``; at most
    ``MAX_KEY``), else ``InvalidBeat``."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        shown = key[:40] if isinstance(key, str) else type(key).__name__
        raise InvalidBeat(
            "key",
            f"{shown!r} is not a heartbeat key: use letters, digits and _ . : @ - "
            f"(at most {MAX_KEY} characters, starting with a letter or digit)",
        )
    return key


def parse_period(text: str, name: str, zero: bool = False) -> float:
    """Seconds of a duration field (``1h``, ``90s``; ``0`` too when ``zero``);
    ``InvalidBeat`` for field ``name`` otherwise."""
    if zero and re.fullmatch(r"0+(\.0*)?[smhdw]?", text.strip().lower()):
        return 0.0
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidBeat(name, str(exc)) from None


def check_beat(key: Any, every: Any, grace: Any, level: Any) -> tuple[str, float, float, str]:
    """A beat's fields, checked (``InvalidBeat`` names the bad one)."""
    check_key(key)
    for name, value in (("every", every), ("grace", grace)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidBeat(name, "must be a number of seconds")
        floor = 0.0 if name == "grace" else math.ulp(0.0)  # grace may be 0, every not
        if not floor <= value <= MAX:  # NaN too
            least = "above zero" if name == "every" else "zero or more"
            raise InvalidBeat(name, f"must be {least} and at most {format_duration(MAX)}")
    try:
        check_level(level)
    except ValueError as exc:
        raise InvalidBeat("level", str(exc)) from None
    return key, float(every), float(grace), level


@dataclass
class Heartbeat:
    """One heartbeat. ``late``: the last beat it went late after (its alert was raised),
    None while it is ok."""

    key: str
    every: float
    grace: float = 0.0
    level: str = "warning"
    source: str | None = None
    last_beat: float = 0.0
    late: float | None = None

    @property
    def due(self) -> float:
        """When it goes late without another beat (epoch seconds)."""
        return self.last_beat + self.every + self.grace

    def is_late(self, now: float) -> bool:
        return now > self.due

    def as_dict(self, now: float) -> dict[str, Any]:
        """What ``lcbot heartbeats --json`` prints for it."""
        return {
            "key": self.key,
            "every": self.every,
            "grace": self.grace,
            "level": self.level,
            "source": self.source,
            "last_beat": self.last_beat,
            "due": self.due,
            "state": "late" if self.is_late(now) else "ok",
        }


def from_row(row: tuple) -> tuple[Heartbeat, bool, int]:
    """A heartbeat from a ``lcbot.db.heartbeats.COLUMNS`` row, whether it is a tombstone,
    and its ``seq``."""
    key, every, grace, level, source, last_beat, late, removed, seq = row
    return Heartbeat(key, every, grace, level, source, last_beat, late), bool(removed), seq


def late_text(beat: Heartbeat, now: float) -> str:
    """``KEY: no heartbeat for 1h12m (expected every 1h)``."""
    silent, every = format_duration(now - beat.last_beat), format_duration(beat.every)
    return f"{beat.key}: no heartbeat for {silent} (expected every {every})"


def back_text(key: str, gap: float) -> str:
    """``KEY: heartbeat back after 1h20m``."""
    return f"{key}: heartbeat back after {format_duration(gap)}"


def removed_text(key: str) -> str:
    """What resolves a late heartbeat that was removed."""
    return f"{key}: heartbeat removed"
