"""Durations as people type them: ``90s``, ``30m``, ``1h``, ``2d``, ``1h30m``, ``45`` (seconds).

Every duration lcbot parses is at most ``MAX`` (366 days): longer ones are refused before
anything is stored, so a typo cannot mute someone for ever.
"""

from __future__ import annotations

import re

from lcbot.text import quote

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX = 366 * 86400.0
_PART = re.compile(r"(\d{1,24}(?:\.\d{1,9})?)([smhdw])")


def parse_duration(text: str, maximum: float = MAX) -> float:
    """Seconds in ``text`` (at most ``maximum``); ValueError with a short hint otherwise."""
    cleaned = text.strip().lower().replace(" ", "")
    if len(cleaned) > 40:
        seconds = None
    elif re.fullmatch(r"\d{1,24}(\.\d{1,9})?", cleaned):
        seconds = float(cleaned)
    elif cleaned and re.fullmatch(f"(?:{_PART.pattern})+", cleaned):
        seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(cleaned))
    else:
        seconds = None
    if seconds is None:
        raise ValueError(
            f"'{quote(text, 40)}' is not a duration (examples: 90s, 30m, 1h, 2d, 1h30m)"
        )
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    if seconds > maximum:
        raise ValueError(f"a duration must be at most {format_duration(maximum)}")
    return seconds


def format_duration(seconds: float) -> str:
    """``5400`` → ``1h30m``."""
    seconds = round(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not out:
        out.append(f"{seconds}s")
    return "".join(out)
