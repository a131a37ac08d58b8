"""Durations as people type them: ``90s``, ``30m``, ``1h``, ``2d``, ``1h30m``, ``45`` (seconds)."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError with a short hint when it is not a duration."""
    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        seconds = float(cleaned)
    elif cleaned and re.fullmatch(f"(?:{_PART.pattern})+", cleaned):
        seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(cleaned))
    else:
        raise ValueError(f"'{text}' is not a duration (examples: 90s, 30m, 1h, 2d, 1h30m)")
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
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
