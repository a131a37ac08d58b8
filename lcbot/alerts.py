"""Alerts: raise, run the ``on_alert`` hooks, route by level, de-duplicate, silence, queue.

An alert is first a row in the ``alerts`` table (state ``new``): ``app.alert`` writes it
from any thread, ``lcbot alert`` from another process. The ``AlertRouter`` on the event
loop takes new rows (woken at once in-process, polled every 0.5 s otherwise), decides who
gets it and puts the messages in the outbox; the alert's outcome is written in the same
transaction as those messages, so a crash never loses an alert nor sends it twice to
the outbox.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcbot.errors import ConfigError, UsageError
from lcbot.store import connect
from lcbot.users import Pri, User

if TYPE_CHECKING:  # pragma: no cover
    from lcbot.app import App

log = logging.getLogger("lcbot.alerts")

LEVELS = ("info", "warning", "critical")
PRIORITY = {"critical": 0, "warning": 1, "info": 2}  # outbox priority (replies are 0)
DEFAULT_ROUTES = {"critical": "user", "warning": "admin", "info": "root"}
ALERT_COLUMNS = "id, created, text, level, title, key, resolved, source"


@dataclass
class Alert:
    """One alert. ``on_alert`` hooks may change ``text``, ``level`` and ``recipients``
    (user names; ``None`` means: route by level)."""

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

    def message(self, repeats: int = 0, since: float | None = None) -> str:
        """The text users receive."""
        head = "RESOLVED" if self.resolved else self.level.upper()
        body = f"{self.title}: {self.text}" if self.title else self.text
        text = f"{head} {body}"
        if repeats and since is not None:
            text += f" (repeated {repeats}× since {time.strftime('%H:%M', time.localtime(since))})"
        return text


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise UsageError(f"unknown level {level!r}; valid levels: {', '.join(LEVELS)}")
    return level


def insert_alert(
    db: sqlite3.Connection,
    text: str,
    level: str = "info",
    title: str | None = None,
    key: str | None = None,
    resolved: bool = False,
    source: str | None = None,
) -> int:
    """Store a new alert (any process); returns its id. The running bot routes it."""
    check_level(level)
    if not isinstance(text, str) or not text.strip():
        raise UsageError("alert text is empty")
    for name, value in (("text", text), ("title", title), ("key", key)):
        try:
            (value or "").encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"alert {name} is not valid text (undecodable bytes)") from None
    cursor = db.execute(
        "INSERT INTO alerts (created, text, level, title, key, resolved, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (time.time(), text.strip(), level, title, key, int(resolved), source),
    )
    return int(cursor.lastrowid)


@dataclass(frozen=True)
class AlertSettings:
    """``[alerts]`` and ``[alerts.routes]``."""

    routes: dict[str, Pri]
    repeat_interval: float = 1800.0
    fallback_after: float = 300.0
    fallback_urls: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, section: dict[str, Any], where: str) -> AlertSettings:
        routes_raw = section.get("routes", {})
        if not isinstance(routes_raw, dict):
            raise ConfigError(f"{where}: [alerts.routes] must be a table")
        routes = {}
        for level in LEVELS:
            value = routes_raw.get(level, DEFAULT_ROUTES[level])
            try:
                routes[level] = Pri.parse(value) if isinstance(value, str) else Pri.parse("?")
            except UsageError as exc:
                raise ConfigError(f"{where}: alerts.routes.{level}: {exc}") from None
        unknown = set(routes_raw) - set(LEVELS)
        if unknown:
            raise ConfigError(f"{where}: alerts.routes: unknown level(s) {sorted(unknown)}")
        numbers = {}
        for name, default in (("repeat_interval", 1800), ("fallback_after", 300)):
            value = section.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{where}: alerts.{name}: expected seconds ≥ 0, got {value!r}")
            numbers[name] = float(value)
        urls = section.get("fallback_urls", [])
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ConfigError(f"{where}: alerts.fallback_urls: expected a list of texts")
        return cls(routes, numbers["repeat_interval"], numbers["fallback_after"], tuple(urls))


class AlertRouter:
    """Routes stored alerts. Lives on the event loop; ``raise_alert`` may be called anywhere."""

    POLL = 0.5  # seconds between looks for alerts written by other processes

    def __init__(self, app: App, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.path = path
        self.clock = clock
        self.settings = AlertSettings.from_config(
            app.config.section("alerts"), str(app.config.path)
        )
        self._writer: sqlite3.Connection | None = None  # for inserts from any thread
        self._writer_lock = threading.Lock()
        self.last_seen = 0  # highest alert id already taken for routing
        self.keys: dict[str, tuple[float, int, float | None]] = {}  # last_sent, repeats, since
        self.silences: dict[str, tuple[float, str]] = {}  # key → until, by
        self.mutes: dict[str, float] = {}  # user → until
        self.wake: Callable[[], None] = lambda: None

    def open(self) -> None:
        """Load de-duplication state, silences and mutes."""
        db = self._db
        now = self.clock()
        for key, last_sent, repeats, since in db.execute("SELECT * FROM alert_keys"):
            self.keys[key] = (last_sent, repeats, since)
        for key, until, by in db.execute("SELECT * FROM silences WHERE until > ?", (now,)):
            self.silences[key] = (until, by)
        for user, until in db.execute("SELECT * FROM mutes WHERE until > ?", (now,)):
            self.mutes[user] = until

    @property
    def _db(self) -> sqlite3.Connection:
        assert self.app.outbox.db is not None, "outbox is not open"
        return self.app.outbox.db

    # --- raising ------------------------------------------------------------------------

    def raise_alert(
        self,
        text: str,
        level: str = "info",
        title: str | None = None,
        key: str | None = None,
        resolved: bool = False,
        source: str | None = None,
    ) -> int:
        """Store an alert and wake the router; returns the alert id. Safe from any thread."""
        return self.raise_many([(text, level, title, key, resolved, source)])[0]

    def raise_many(self, alerts: list[tuple]) -> list[int]:
        """Store several alerts in one transaction (all or none); returns their ids.

        Each item is ``(text, level, title, key, resolved, source)``.
        """
        with self._writer_lock:
            if self._writer is None:
                self._writer = connect(self.path)
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                ids = [insert_alert(db, *item) for item in alerts]
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self.wake()
        return ids

    def close(self) -> None:
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # --- routing ------------------------------------------------------------------------

    def take_new(self, limit: int = 5000) -> list[Alert]:
        rows = self._db.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'new' AND id > ? "
            "ORDER BY id LIMIT ?",
            (self.last_seen, limit),
        ).fetchall()
        alerts = []
        for id_, created, text, level, title, key, resolved, source in rows:
            alerts.append(Alert(text, level, title, key, bool(resolved), source, id_, created))
            self.last_seen = id_
        return alerts

    def route_new(self) -> int:
        """Route every new alert; returns how many were taken. One bad alert (a hook that
        set nonsense) is recorded as ``failed`` and does not hold up the others."""
        alerts = self.take_new()
        for alert in alerts:
            try:
                self.route(alert)
            except Exception as exc:
                log.exception("alert %d could not be routed", alert.id)
                outcome = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
                self.app.outbox.defer(
                    "UPDATE alerts SET state = 'failed', outcome = ? WHERE id = ?",
                    (json.dumps(outcome), alert.id),
                )
        return len(alerts)

    def recipients_for(self, alert: Alert) -> list[User]:
        if alert.recipients is not None:
            return [u for u in map(self.app.directory.by_name, alert.recipients) if u]
        least = self.settings.routes.get(alert.level, Pri.ROOT)
        return [u for u in self.app.directory if u.pri <= least]

    def route(self, alert: Alert) -> dict[str, Any]:
        """Hooks → routing → silences → de-duplication → mutes → outbox. Returns the outcome."""
        now = self.clock()
        outcome: dict[str, Any] = {}
        votes = self.app.plugins.call("on_alert", alert=alert)
        if alert.level not in LEVELS:
            log.warning("alert %d: hook set unknown level %r; using warning", alert.id, alert.level)
            alert.level = "warning"
        if not isinstance(alert.text, str) or not alert.text:
            raise TypeError(f"a hook set alert.text to {alert.text!r}")
        if alert.recipients is not None and (
            not isinstance(alert.recipients, list | tuple)
            or not all(isinstance(r, str) for r in alert.recipients)
        ):
            raise TypeError(f"a hook set alert.recipients to {alert.recipients!r}")
        if False in votes:
            outcome["state"] = "suppressed"
        elif alert.key and self._silenced(alert.key, now):
            outcome["state"] = "silenced"
        elif alert.key and not alert.resolved and self._is_repeat(alert.key, now):
            last_sent, repeats, since = self.keys[alert.key]
            self.keys[alert.key] = (last_sent, repeats + 1, since or alert.created)
            self._save_key(alert.key)
            outcome["state"] = "deduplicated"
        else:
            text = alert.message()
            if alert.key and alert.resolved:
                if self.keys.pop(alert.key, None) is not None:
                    self.app.outbox.defer("DELETE FROM alert_keys WHERE key = ?", (alert.key,))
            elif alert.key:
                _, repeats, since = self.keys.get(alert.key, (0.0, 0, None))
                text = alert.message(repeats, since)
                self.keys[alert.key] = (now, 0, None)
                self._save_key(alert.key)
            to, muted, unbound = [], [], []
            for user in self.recipients_for(alert):
                if not self.app.transport.can_reach(user):
                    unbound.append(user.name)
                else:
                    (muted if self.mutes.get(user.name, 0) > now else to).append(user.name)
            for name in to:
                self.app.outbox.put(name, text, f"alert:{alert.level}", PRIORITY[alert.level])
            outcome.update(state="delivered" if to else "no recipients", to=to)
            if muted:
                outcome["muted"] = muted
            if unbound:
                outcome["unbound"] = unbound
        alert.outcome = outcome
        self.app.outbox.defer(
            "UPDATE alerts SET state = ?, outcome = ?, text = ?, level = ? WHERE id = ?",
            (outcome["state"], json.dumps(outcome), alert.text, alert.level, alert.id),
        )
        return outcome

    def _is_repeat(self, key: str, now: float) -> bool:
        entry = self.keys.get(key)
        return entry is not None and now - entry[0] < self.settings.repeat_interval

    def _silenced(self, key: str, now: float) -> bool:
        entry = self.silences.get(key)
        return entry is not None and entry[0] > now

    def _save_key(self, key: str) -> None:
        last_sent, repeats, since = self.keys[key]
        self.app.outbox.defer(
            "INSERT OR REPLACE INTO alert_keys VALUES (?, ?, ?, ?)",
            (key, last_sent, repeats, since),
        )

    # --- silences and mutes (chat commands) ------------------------------------------------

    def silence(self, key: str, seconds: float, by: str) -> None:
        until = self.clock() + seconds
        self.silences[key] = (until, by)
        self.app.outbox.defer("INSERT OR REPLACE INTO silences VALUES (?, ?, ?)", (key, until, by))

    def unsilence(self, key: str) -> bool:
        self.app.outbox.defer("DELETE FROM silences WHERE key = ?", (key,))
        return self.silences.pop(key, None) is not None

    def active_silences(self) -> list[tuple[str, float, str]]:
        now = self.clock()
        return sorted((k, u, b) for k, (u, b) in self.silences.items() if u > now)

    def mute(self, user: str, seconds: float) -> float:
        until = self.clock() + seconds
        self.mutes[user] = until
        self.app.outbox.defer("INSERT OR REPLACE INTO mutes VALUES (?, ?)", (user, until))
        return until

    def unmute(self, user: str) -> bool:
        self.app.outbox.defer("DELETE FROM mutes WHERE user = ?", (user,))
        return self.mutes.pop(user, None) is not None
