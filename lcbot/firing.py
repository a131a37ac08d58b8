"""Firing state: which alerts are firing now, who received them, who acknowledged them.

An alert's identity is its key, else the fingerprint of its labels (an alert with neither
is not tracked). The router (``lcbot.router``) hands every routed alert to ``track``: a
delivered firing alert is registered (or refreshed), a resolved one clears its identity.
Each firing alert has a short id (``#3``; the ``firing`` row id, never reused), its first
and last seen times, level, text, labels, recipients (user names and ``room:<id>``), ack
state, and the escalation state ``lcbot.escalation`` advances. Chat ``ack``, ``unack``
and ``resolve`` tell the other recipients. Memory is the truth while the bot runs; every
change is written through the outbox's writer (``record``), so a restart loads it back.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lcbot.db import firing as sql
from lcbot.durations import format_duration
from lcbot.labels import fingerprint, format_labels

CRITICAL = "critical"


class Writer(Protocol):
    """What firing state writes through (the outbox)."""

    def put(self, recipient: str, text: str, kind: str = "reply", priority: int = 0) -> None: ...

    def record(self, op: Callable[..., Any], *args: Any) -> None: ...


class Timing(Protocol):
    """The ``[alerts]`` settings that arm re-notification and escalation."""

    renotify: float | None
    escalate_after: float
    escalation: tuple[str, ...]


def identity(alert: Any) -> str | None:
    """``alert.key``, else the fingerprint of its labels; None: not tracked."""
    if alert.key:
        return alert.key
    return fingerprint(alert.labels) if alert.labels else None


@dataclass
class FiringAlert:
    """One firing alert (a copy when handed out)."""

    id: int
    ident: str
    level: str
    title: str | None
    text: str
    labels: dict[str, str] = field(default_factory=dict)
    recipients: list[str] = field(default_factory=list)
    first_seen: float = 0.0
    last_seen: float = 0.0
    acked_by: str | None = None
    acked_at: float | None = None
    step: int = 0  # escalation steps taken
    next_renotify: float | None = None
    next_escalate: float | None = None

    @property
    def body(self) -> str:
        return f"{self.title}: {self.text}" if self.title else self.text

    @property
    def name(self) -> str:
        """``#3 DiskFull`` — the id and the title (or the text's start)."""
        short = self.title or (self.text if len(self.text) <= 40 else self.text[:39] + "…")
        return f"#{self.id} {short}"

    def line(self, now: float) -> str:
        """One line of the ``alerts`` listing."""
        parts = [f"#{self.id} {self.level.upper()} {self.body.splitlines()[0][:80]}"]
        parts.append(format_duration(max(1.0, now - self.first_seen)))
        if self.labels:
            parts.append(format_labels(self.labels))
        if self.acked_by:
            ago = format_duration(max(1.0, now - (self.acked_at or now)))
            parts.append(f"acked by {self.acked_by} {ago} ago")
        else:
            parts.append("unacked")
        return " · ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Firing:
    """The alerts firing now. Every method is safe from any thread (one short lock)."""

    def __init__(
        self,
        timing: Timing,
        writer: Writer,
        clock: Callable[[], float] = time.time,
        forget_key: Callable[[str], None] = lambda key: None,
    ) -> None:
        self.timing = timing
        self.writer = writer
        self.clock = clock
        self.forget_key = forget_key  # drop the router's de-duplication entry of a key
        self.items: dict[str, FiringAlert] = {}  # ident → alert
        self.last_id = 0
        self.lock = threading.RLock()
        self._seen: dict[int, float] = {}  # firing id → last seen, not recorded yet

    def load(self, conn: Any) -> None:
        """Read the firing alerts stored (at start)."""
        with self.lock:
            self.items = {row["ident"]: FiringAlert(**row) for row in sql.load(conn)}
            self.last_id = sql.last_id(conn)

    # --- from the router --------------------------------------------------------------

    def track(self, alert: Any, outcome: dict[str, Any], now: float) -> None:
        """Register a delivered firing alert, refresh a de-duplicated one, clear the
        identity of a resolved one."""
        ident = identity(alert)
        if ident is None:
            return
        state = outcome.get("state")
        with self.lock:
            known = self.items.get(ident)
            if alert.resolved:
                if known is not None:
                    self._clear(known, now, None)
                return
            if state == "deduplicated" and known is not None:
                known.last_seen = now
                self._seen[known.id] = now  # written once per round: ``write_seen``
            if state != "delivered":
                return
            to = [*outcome.get("to", ()), *(f"room:{r['id']}" for r in outcome.get("rooms", ()))]
            labels = dict(alert.labels)
            if known is None:
                self.last_id += 1
                known = self.items[ident] = FiringAlert(
                    self.last_id, ident, alert.level, alert.title, alert.text, labels, to, now, now
                )
                self._arm(known, now)
            else:
                became_critical = known.level != CRITICAL and alert.level == CRITICAL
                known.level, known.title, known.text = alert.level, alert.title, alert.text
                known.labels, known.last_seen = labels or known.labels, now
                known.recipients.extend(r for r in to if r not in known.recipients)
                if became_critical and known.acked_by is None:
                    self._arm(known, now)
            self.save(known)

    def write_seen(self) -> None:
        """Record the ``last_seen`` of the alerts refreshed since the last call (one write
        per routing round, not one full row per de-duplicated alert)."""
        with self.lock:
            if not self._seen:
                return
            seen, self._seen = list(self._seen.items()), {}
            self.writer.record(sql.touch, seen)

    # --- chat controls ----------------------------------------------------------------

    def find(self, ref: str) -> FiringAlert | None:
        """The firing alert with short id ``ref`` (``3`` or ``#3``) or identity (key)."""
        ref = ref.strip()
        with self.lock:
            if ref.lstrip("#").isdigit():
                number = int(ref.lstrip("#"))
                for f in self.items.values():
                    if f.id == number:
                        return f
            return self.items.get(ref)

    def ack(self, ref: str, by: str) -> FiringAlert:
        """``by`` takes the alert: re-notification and escalation stop; the other
        recipients are told. LookupError: nothing firing by that id or key."""
        with self.lock:
            f = self._get(ref)
            if f.acked_by is None:
                f.acked_by, f.acked_at = by, self.clock()
                f.next_renotify = f.next_escalate = None
                self.save(f)
                self._tell(f, by, f"{by} acknowledged {f.name}")
            return dataclasses.replace(f)

    def unack(self, ref: str, by: str) -> FiringAlert:
        """Drop the ack: re-notification (and escalation) start again from now."""
        with self.lock:
            f = self._get(ref)
            if f.acked_by is not None:
                f.acked_by = f.acked_at = None
                self._arm(f, self.clock())
                self.save(f)
                self._tell(f, by, f"{by} un-acknowledged {f.name}: re-notification resumes")
            return dataclasses.replace(f)

    def resolve(self, ref: str, by: str) -> FiringAlert:
        """``by`` resolves an alert by hand (one that never resolves by itself); its
        recipients are told."""
        with self.lock:
            f = self._get(ref)
            self._clear(f, self.clock(), by)
            self.forget_key(f.ident)  # the next firing alert with this key is new again
            self._tell(f, by, f"RESOLVED {f.name} (resolved by {by})", f"alert:{f.level}")
            return dataclasses.replace(f)

    def listing(self) -> list[FiringAlert]:
        """Copies of the firing alerts, newest first."""
        with self.lock:
            found = sorted(self.items.values(), key=lambda f: (f.first_seen, f.id), reverse=True)
            return [dataclasses.replace(f, recipients=list(f.recipients)) for f in found]

    # --- inside -----------------------------------------------------------------------

    def _get(self, ref: str) -> FiringAlert:
        f = self.find(ref)
        if f is None:
            raise LookupError(f"nothing firing as {ref!r}; send alerts for the list")
        return f

    def _arm(self, f: FiringAlert, now: float) -> None:
        """Set the re-notify and escalation due times of an unacknowledged alert."""
        if f.level != CRITICAL:
            f.next_renotify = f.next_escalate = None
            return
        every = self.timing.renotify
        f.next_renotify = now + every if every else None
        more = f.step < len(self.timing.escalation)
        f.next_escalate = now + self.timing.escalate_after if more else None

    def _clear(self, f: FiringAlert, now: float, by: str | None) -> None:
        self.items.pop(f.ident, None)
        self.writer.record(sql.resolve, f.id, now, by)

    def save(self, f: FiringAlert) -> None:
        self.writer.record(sql.save, dataclasses.replace(f, recipients=list(f.recipients)))

    def _tell(self, f: FiringAlert, by: str, text: str, kind: str = "notice") -> None:
        """Send ``text`` to every recipient of ``f`` except ``by``."""
        for name in f.recipients:
            if name != by:
                self.writer.put(name, text, kind)
