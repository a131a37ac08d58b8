"""Alerts as one value: ``Alert``, built and checked by ``make_alert`` for every producer.

The CLI, the HTTP listener, Alertmanager, ``bot.alert`` and ``ctx.alert`` all build an
``Alert`` with ``make_alert`` (one set of rules: known level, non-empty text, length limits,
storable Unicode) and hand it to the router (``lcbot.router``): in-process alerts directly,
other processes through the ``alerts`` table.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from lcbot.errors import UsageError
from lcbot.labels import format_labels, unsaid_labels
from lcbot.schema import LEVELS
from lcbot.users import Pri

PRIORITY = {"critical": 0, "warning": 1, "info": 2}  # outbox priority (replies are 0)
MAX_TEXT = 4000  # characters of an alert's text: a chat alert is not a log file
MAX_TITLE = 200  # characters of a title, a key or a source
MAX_LABELS = 32  # labels of one alert
MAX_LABEL_NAME = 100  # characters of a label's name
MAX_LABEL_VALUE = 200  # characters of a label's value
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # Prometheus' label names


class InvalidAlert(UsageError, ValueError):
    """An alert that cannot be raised; ``field`` names the culprit (exit 2 on the CLI,
    400 over HTTP, ``ValueError`` for plugins)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Alert:
    """One alert. ``on_alert`` hooks may change ``text``, ``level`` and ``recipients``
    (user names and ``room:<id>`` group chats; ``None`` means: route by level). ``id`` is
    set once it is stored."""

    text: str
    level: str = "info"
    title: str | None = None
    key: str | None = None
    resolved: bool = False
    source: str | None = None
    id: int = 0
    created: float = 0.0
    recipients: list[str] | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def message(self, repeats: int = 0, since: float | None = None) -> str:
        """The text users receive."""
        head = "RESOLVED" if self.resolved else self.level.upper()
        body = f"{self.title}: {self.text}" if self.title else self.text
        text = f"{head} {body}"
        shown = unsaid_labels(self.labels, body, self.level)
        if shown:  # at the end of the first line: a job's output may follow
            first, newline, rest = text.partition("\n")
            text = f"{first} [{format_labels(shown)}]{newline}{rest}"
        if repeats and since is not None:
            text += f" (repeated {repeats}× since {time.strftime('%H:%M', time.localtime(since))})"
        return text


def check_level(level: Any) -> str:
    if level not in LEVELS:
        raise InvalidAlert("level", f"unknown level {level!r}; valid levels: {', '.join(LEVELS)}")
    return level


# characters that show nothing though they are letters, marks or symbols: combining
# grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian and other variation
# selectors, the blank Braille pattern
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})  # controls, formats, spaces


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: only whitespace, control and format characters
    (U+200B, U+FEFF, …) and the few other invisible ones."""
    if text and "!" <= text[0] <= "~":  # the usual case: a visible ASCII character first
        return False
    category = unicodedata.category
    return all(ch.isspace() or ch in _INVISIBLE or category(ch) in _BLANK_CATEGORIES for ch in text)


def _text(value: Any, name: str, limit: int, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidAlert(name, f"alert {name} must be a text, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAlert(name, f"alert {name} is not valid text (undecodable bytes)") from None
    value = value.strip()
    if not value or is_blank(value):
        if required:
            raise InvalidAlert(name, f"alert {name} is empty")
        return None
    if len(value) > limit:
        raise InvalidAlert(name, f"alert {name} is longer than {limit:,} characters")
    return value


def check_labels(labels: Any) -> dict[str, str]:
    """Checked labels: a mapping of names (``[a-zA-Z_][a-zA-Z0-9_]*``) to texts; an empty
    value means the label is absent (as in Alertmanager) and is dropped."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise InvalidAlert("labels", f"alert labels must be a mapping, not {type(labels).__name__}")
    if len(labels) > MAX_LABELS:
        raise InvalidAlert("labels", f"an alert has at most {MAX_LABELS} labels")
    checked: dict[str, str] = {}
    for name, value in labels.items():
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
            raise InvalidAlert(
                "labels",
                f"label name {name!r} is not valid (letters, digits, _; not a digit first)",
            )
        if len(name) > MAX_LABEL_NAME:
            raise InvalidAlert(
                "labels", f"label name {name[:20]!r}… is longer than {MAX_LABEL_NAME}"
            )
        if not isinstance(value, str):
            raise InvalidAlert("labels", f"label {name} must be a text, not {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidAlert("labels", f"label {name} is not valid text") from None
        if len(value) > MAX_LABEL_VALUE:
            raise InvalidAlert(
                "labels", f"label {name} is longer than {MAX_LABEL_VALUE} characters"
            )
        if value:
            checked[name] = value
    return checked


def make_alert(
    text: Any,
    level: Any = "info",
    title: Any = None,
    key: Any = None,
    resolved: Any = False,
    source: Any = None,
    created: float | None = None,
    labels: Any = None,
) -> Alert:
    """A checked ``Alert``; ``InvalidAlert`` (a ``ValueError``) names the bad field."""
    checked = _text(text, "text", MAX_TEXT, required=True)
    assert checked is not None
    if not isinstance(resolved, bool):
        raise InvalidAlert("resolved", "alert resolved must be true or false")
    return Alert(
        text=checked,
        level=check_level(level),
        title=_text(title, "title", MAX_TITLE),
        key=_text(key, "key", MAX_TITLE),
        resolved=resolved,
        source=_text(source, "source", MAX_TITLE),
        created=time.time() if created is None else created,
        labels=check_labels(labels),
    )


def alert_from_row(row: tuple) -> Alert:
    """An ``Alert`` from an ``alerts`` row (``lcbot.db.alerts.ALERT_COLUMNS``)."""
    id_, created, text, level, title, key, resolved, source, labels = row
    alert = Alert(text, level, title, key, bool(resolved), source, id_, created)
    alert.labels = json.loads(labels) if labels else {}
    return alert


@dataclass(frozen=True)
class AlertSettings:
    """``[alerts]`` and ``[storage]``, ready to use."""

    routes: dict[str, Pri]
    repeat_interval: float = 1800.0
    fallback_after: float = 300.0
    fallback_urls: tuple[str, ...] = ()
    keep: float = 30 * 86400.0
    inhibit: tuple[Any, ...] = ()  # lcbot.inhibit.InhibitRule
    renotify: float | None = 900.0  # None: off
    escalate_after: float = 1800.0
    escalation: tuple[str, ...] = ()  # privilege or user names, one per step

    @classmethod
    def from_settings(cls, alerts: dict[str, Any], storage: dict[str, Any]) -> AlertSettings:
        """From the checked ``[alerts]`` and ``[storage]`` values of ``Config.settings``."""
        return cls(
            routes={level: Pri.parse(pri) for level, pri in alerts["routes"].items()},
            repeat_interval=alerts["repeat_interval"],
            fallback_after=alerts["fallback_after"],
            fallback_urls=alerts["fallback_urls"],
            keep=storage["keep"],
            inhibit=alerts.get("inhibit", ()),
            renotify=alerts.get("renotify", 900.0),
            escalate_after=alerts.get("escalate_after", 1800.0),
            escalation=tuple(alerts.get("escalation", ())),
        )
