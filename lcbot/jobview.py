"""How jobs read in chat: durations, a text progress bar with an ETA, the status block."""

from __future__ import annotations

import time
from typing import Any

BAR = 10  # cells of the progress bar


def describe(seconds: float) -> str:
    """``3h12m``, ``12m``, ``45s``, ``2d3h``."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def progress_line(session: Any) -> str:
    """``[######----] 62% (620/1000) ETA 4m — page 52``, or ``620 done — …`` without a total."""
    if session.progress is None:
        return ""
    done, total, note, at = session.progress
    tail = f" — {note}" if note else ""
    if not total:
        return f"{_number(done)} done{tail}"
    share = max(0.0, min(1.0, done / total))
    filled = round(share * BAR)
    bar = "#" * filled + "-" * (BAR - filled)
    eta = ""
    first = session.first_progress
    if first is not None and done > first[0] and share < 1:
        rate = (done - first[0]) / max(at - first[1], 1e-6)
        eta = f" ETA {describe((total - done) / rate)}"
    return f"[{bar}] {share * 100:.0f}% ({_number(done)}/{_number(total)}){eta}{tail}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def summary(session: Any, now: float | None = None) -> str:
    """One line for ``jobs``."""
    now = time.time() if now is None else now
    where = f"{session.name} on {session.host} (pid {session.pid})"
    if not session.connected:
        ago = describe(now - (session.gone_at or now))
        return f"{where}: {session.outcome or 'gone'} {ago} ago"
    parts = [f"{where}, up {describe(now - session.started)}"]
    if session.status:
        parts.append(session.status)
    if session.progress is not None:
        parts.append(progress_line(session))
    return " — ".join(parts)


def details(session: Any, now: float | None = None) -> str:
    """The answer to a bare ``<job>``: where, since when, status, progress, commands."""
    now = time.time() if now is None else now
    up = describe(now - session.started)
    lines = [f"{session.name} on {session.host} (pid {session.pid}), up {up}"]
    if session.status:
        lines.append(f"status: {session.status}")
    if session.progress is not None:
        lines.append(f"progress: {progress_line(session)}")
    if session.commands:
        lines.append("commands: " + ", ".join(sorted(session.commands)))
    return "\n".join(lines)
