"""Alert grouping as in Alertmanager: ``[alerts] group_by``, ``group_wait``, ``group_interval``.

Alerts whose ``group_by`` labels have the same values form one group (``["..."]``: all
labels, so only alerts with the same label set group together). The first alert of a new
group waits ``group_wait`` so others can join; the group's first message carries them all.
Later additions and resolved alerts wait for the group's next tick, ``group_interval``
after its last message, and go as one update. A group ends once nothing in it fires.

The router (``lcbot.router``) hands every alert that passed hooks and silences to
``Grouper.add`` and records it ``grouped`` (a row of the alerts table, so a restart
re-reads it: nothing grouped is lost); ``flush`` turns due groups into one combined alert
each, which de-duplication and routing then treat like any other. Levels: a message has
the highest level of the alerts in it and those firing in its group.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lcbot.alerts import PRIORITY, Alert
from lcbot.labels import fingerprint, format_labels

ALL = "..."  # group_by = ["..."]: every label
MAX_LISTED = 20  # alerts named in one message; the rest are counted
MAX_SUMMARY = 80  # characters of one alert in a group message


def group_labels(labels: dict[str, str], group_by: Iterable[str]) -> dict[str, str]:
    """The labels that make an alert's group: those of ``group_by`` it has (an absent or
    empty label is no label, as in Alertmanager), or all of them for ``["..."]``."""
    names = tuple(group_by)
    if ALL in names:
        return dict(labels)
    return {name: labels[name] for name in names if labels.get(name)}


def identity(alert: Alert) -> str | None:
    """What makes two alerts of a group the same one (a later one replaces it, a resolved
    one ends it): the key, else the labels with title and text (None: neither)."""
    if alert.key or not alert.labels:
        return alert.key
    extra = {" title": alert.title or "", " text": alert.text}  # " ": never a label name
    return fingerprint({**alert.labels, **extra})


def summary(alert: Alert) -> str:
    """An alert in a group message: ``DiskFull /var`` (title, then the first line)."""
    line = alert.text.split("\n", 1)[0]
    text = f"{alert.title} {line}" if alert.title and line != alert.title else line
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


def highest(levels: Iterable[str]) -> str:
    return min(levels, key=PRIORITY.__getitem__, default="info")


@dataclass
class Group:
    """One group's state: what waits, what fires (identity → summary, level), its timer."""

    labels: dict[str, str]
    pending: list[Alert] = field(default_factory=list)
    firing: dict[str, tuple[str, str]] = field(default_factory=dict)
    due: float | None = None  # when the next message goes; None: nothing waits
    flushed_at: float | None = None  # when its last message went

    @property
    def name(self) -> str:
        return format_labels(self.labels)

    def combine(self, fresh: list[Alert]) -> Alert:
        """The one alert a person receives for ``fresh`` (this flush's alerts that passed
        de-duplication); updates what fires."""
        resolved, loose = [], []
        for alert in fresh:
            ident = identity(alert)
            if alert.resolved:
                resolved.append(summary(alert))
                if ident is not None:
                    self.firing.pop(ident, None)
            elif ident is None:
                loose.append(summary(alert))  # not tracked: named in this message only
            else:
                self.firing[ident] = (summary(alert), alert.level)
        names = [s for s, _ in self.firing.values()] + loose
        where = f" for {self.name}" if self.labels else ""
        parts = []
        if names:
            parts.append(f"{len(names)} firing{where}: {_listing(names)}")
        if resolved:
            head = f"{len(resolved)} resolved" if names else f"{len(resolved)} resolved{where}"
            parts.append(f"{head}: {_listing(resolved)}")
        levels = [a.level for a in fresh] + [level for _, level in self.firing.values()]
        hooked = [a.recipients for a in fresh]
        recipients = None
        if all(r is not None for r in hooked):  # every hook chose: the union of their choice
            recipients = list(dict.fromkeys(name for r in hooked for name in r or ()))
        return Alert(
            text=" · ".join(parts),
            level=highest(levels),
            resolved=not names,
            source="grouping",
            created=min(a.created for a in fresh),
            recipients=recipients,
            labels=dict(self.labels),
        )


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


class Grouper:
    """The groups of a running bot (memory; the grouped alerts themselves are rows)."""

    def __init__(self, group_by: Iterable[str], wait: float, interval: float) -> None:
        self.group_by = tuple(group_by)
        self.wait = wait
        self.interval = interval
        self.groups: dict[str, Group] = {}

    @classmethod
    def from_settings(cls, alerts: dict[str, Any]) -> Grouper:
        """From the checked ``[alerts]`` values."""
        return cls(alerts["group_by"], alerts["group_wait"], alerts["group_interval"])

    @property
    def enabled(self) -> bool:
        return bool(self.group_by)

    def add(self, alert: Alert, now: float) -> Group:
        """Put ``alert`` in its group and set when the group's next message goes."""
        labels = group_labels(alert.labels, self.group_by)
        name = format_labels(labels)
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(labels)
        group.pending.append(alert)
        if group.due is None:
            if group.flushed_at is None:  # a new group waits group_wait for more …
                group.due = now + self.wait
                if alert.created + self.wait <= now:  # … unless its alert waited that long
                    group.due = now  # already (Alertmanager flushes such a group at once)
            elif self.interval <= 0:
                group.due = now
            else:  # the next tick of the group's interval after its last message
                ticks = max(1, math.ceil((now - group.flushed_at) / self.interval))
                group.due = group.flushed_at + ticks * self.interval
        return group

    def next_due(self) -> float | None:
        """When the earliest group's next message goes (None: nothing waits)."""
        return min((g.due for g in self.groups.values() if g.due is not None), default=None)

    def due(self, now: float, everything: bool = False) -> list[tuple[Group, list[Alert]]]:
        """The groups whose message is due (all that wait with ``everything``) and their
        waiting alerts; each group's timer restarts from ``now``."""
        batches = []
        for group in list(self.groups.values()):
            if group.due is not None and (everything or group.due <= now):
                batches.append((group, group.pending))
                group.pending, group.due, group.flushed_at = [], None, now
        return batches

    def ended(self, group: Group) -> None:
        """Forget ``group`` if nothing in it fires or waits (after its message)."""
        if not group.firing and not group.pending:
            self.groups.pop(group.name, None)


class Stages(Protocol):
    """The router's stages after grouping, for the alerts of one message."""

    def count_repeat(self, alert: Alert, now: float) -> bool: ...

    def note_key(self, alert: Alert, now: float) -> str: ...

    def send(self, alert: Alert, text: str, now: float) -> dict[str, Any]: ...

    def save_grouped(self, alert: Alert) -> None: ...


def flush(grouper: Grouper, stages: Stages, now: float, everything: bool = False) -> int:
    """Send the due groups' messages (each its own de-duplication, routes, mutes) and record
    each grouped alert's outcome; returns how many messages went."""
    sent = 0
    for group, alerts in grouper.due(now, everything):
        fresh: list[Alert] = []
        for alert in alerts:
            if stages.count_repeat(alert, now):
                alert.outcome = {"state": "deduplicated", "group": group.name}
            else:
                stages.note_key(alert, now)
                fresh.append(alert)
        if fresh:
            combined = group.combine(fresh)
            outcome = {**stages.send(combined, combined.message(), now), "group": group.name}
            sent += 1
            for alert in fresh:
                alert.outcome = dict(outcome)
        for alert in alerts:
            stages.save_grouped(alert)
        grouper.ended(group)
    return sent
