"""The alert router: ``on_alert`` hooks → inhibition (``lcbot.inhibit``) → silences (by key,
and by label matchers: ``lcbot.silencing``) → grouping → de-duplication, with the firing state
(``lcbot.firing``: ack; ``lcbot.escalation``: re-notify, escalate) → routes (and on call) →
mutes → outbox.

Routes reach users (``[alerts.routes]``) and group chats (``[[rooms]]``, by level); a hook
that sets ``alert.recipients`` names users and ``room:<id>`` groups instead.

Alerts raised in this process (``bot.alert``, ``ctx.alert``) are handed over by ``submit``
(any thread) and routed on the event loop at once, in rounds; alerts stored by other
processes (``lcbot alert``) are rows in state ``new``, looked for every ``POLL`` seconds and
at once when woken; the HTTP listener's are stored so (``lcbot.alert_store``), then routed
from memory. An alert's record and outcome are written in the same commit as its messages,
so a crash neither loses a routed alert nor routes a stored one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from lcbot.alerts import PRIORITY, Alert, AlertSettings, alert_from_row
from lcbot.asyncutil import Waker, background, poll_loop
from lcbot.db import Database
from lcbot.db import alerts as sql
from lcbot.escalation import Escalator
from lcbot.firing import Firing
from lcbot.grouping import Grouper, flush
from lcbot.inhibit import Inhibitor
from lcbot.labels import format_labels
from lcbot.oncall import put_first
from lcbot.rooms import Room, named_recipients
from lcbot.router_controls import ChatControls
from lcbot.schema import LEVELS
from lcbot.silencing import LabelSilences
from lcbot.text import clean_text
from lcbot.users import Directory, Pri, User

log = logging.getLogger("lcbot.router")

POLL = 0.5  # seconds between looks for alerts stored by other processes
BATCH = 5000  # stored alerts taken per look
ROUND = 200  # submitted alerts the router task routes per round (the loop goes on between)
ROUND_MESSAGES = 250  # messages a round puts at most (so a commit stays short): then it ends
MAX_WAITING = 1000  # alerts submitted and not routed yet past which another thread waits…
MAX_WAIT = 1.0  # …at most this long (seconds), then its alert joins anyway


class Writer(Protocol):
    """What the router writes through (the outbox)."""

    def put(self, recipient: str, text: str, kind: str = "reply", priority: int = 0) -> None: ...

    def record(self, op: Callable[..., Any], *args: Any) -> None: ...


class People(Protocol):
    """Who receives alerts (the roster): users and group chats."""

    directory: Directory
    rooms: tuple[Room, ...]

    def reachable(self, user: User) -> bool: ...


class AlertRouter(ChatControls):
    """Routes alerts on the event loop; ``submit`` and the chat controls work from any thread."""

    def __init__(
        self,
        settings: AlertSettings,
        db: Database,
        writer: Writer,
        people: People,
        on_alert: Callable[[Alert], bool],
        clock: Callable[[], float] = time.time,
        grouper: Grouper | None = None,
        on_call: Callable[[float], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.grouper = grouper or Grouper((), 0, 0)  # [alerts] group_by; off when empty
        self.on_call = on_call  # who gets critical alerts first (lcbot.oncall)
        self.db = db
        self.writer = writer
        self.people = people
        self.on_alert = on_alert  # the hooks; False: suppressed
        self.clock = clock
        self.waker = Waker()
        self.last_seen = 0  # highest stored alert id taken for routing
        self.keys: dict[str, tuple[float, int, float | None]] = {}  # last_sent, repeats, since
        self.silences: dict[str, tuple[float, str]] = {}  # key → until, by
        self.mutes: dict[str, float] = {}  # user → until
        self.label_silences = LabelSilences(writer, clock)  # silences by matchers
        self.inhibitor = Inhibitor(settings.inhibit, writer)
        self._submitted: deque[Alert] = deque()
        self._expire_after: int | None = None  # where retention goes on (an alert id)
        self._lock = threading.Lock()  # the submitted alerts
        self._room = threading.Condition(self._lock)  # ``submit`` waits on it past MAX_WAITING
        self._loop_thread: int | None = None  # whose submits never wait
        self._controls = threading.Lock()  # silences and mutes
        self._keys_lock = threading.Lock()  # de-duplication keys dropped from other threads
        self._dirty_keys: set[str] = set()  # keys changed this round, written at its end
        self._taken: set[int] = set()  # stored alerts routed from memory (``submit_stored``)
        self._puts = 0  # messages put this round (``ROUND_MESSAGES``)
        self.firing = Firing(settings, writer, self._now, self._forget_key)  # state, acks
        self.escalation = Escalator(self.firing, people, writer, self._muted, self._now)

    def open(self) -> None:
        """Load de-duplication state, silences and mutes."""
        conn = self.db.conn
        assert conn is not None, "the database is not open"
        now = self.clock()
        self.keys = {k: (sent, n, since) for k, sent, n, since in sql.load_keys(conn)}
        self.silences = {k: (until, by) for k, until, by in sql.load_silences(conn, now)}
        self.mutes = dict(sql.load_mutes(conn, now))
        self.label_silences.refresh(conn, force=True)
        self.inhibitor.open(conn)
        for row in sql.take_grouped(conn):  # grouped before a crash: sent soon (or at once)
            self.grouper.add(alert_from_row(row), now)
        self.firing.load(conn)

    # --- taking alerts ----------------------------------------------------------------------

    def submit(self, alert: Alert) -> Alert:
        """Route ``alert`` (built by ``make_alert``) soon; safe from any thread. A thread
        other than the loop's waits (at most ``MAX_WAIT``) while ``MAX_WAITING`` alerts wait
        to be routed: a producer faster than routing is slowed down, not queued without end."""
        with self._lock:
            if len(self._submitted) >= MAX_WAITING and threading.get_ident() != self._loop_thread:
                self._room.wait_for(lambda: len(self._submitted) < MAX_WAITING, MAX_WAIT)
            first = not self._submitted
            self._submitted.append(alert)
        if first:  # once per batch: the router takes every alert submitted until it swaps
            self.waker.wake()
        return alert

    submitted = property(lambda self: len(self._submitted), doc="alerts not routed yet")

    def route_pending(self, limit: int | None = None) -> int:
        """Route the submitted alerts and every newly stored alert; returns how many. With a
        ``limit`` (the router task: rounds of ``ROUND``) a round ends after that many alerts
        or once it has put ``ROUND_MESSAGES`` messages, and the next one comes after a loop
        turn: the loop and the outbox's commit go on between, and each commit stays short."""
        with self._lock:
            batch = self._submitted
            if limit is not None and len(batch) > limit:
                batch = deque(batch.popleft() for _ in range(limit))
            else:
                self._submitted = deque()
            self._room.notify_all()
        self._puts, count = 0, 0
        while batch and not self._full(limit):
            self._route_safely(batch.popleft())
            count += 1
        if batch:  # the budget ran out: the rest goes first next round
            with self._lock:
                self._submitted.extendleft(reversed(batch))
        conn = self.db.conn
        assert conn is not None
        self.label_silences.refresh(conn)  # the CLI's changes
        while not self._full(limit) and (rows := sql.take_new(conn, self.last_seen, BATCH)):
            for row in rows:
                if self._full(limit):
                    break
                alert = alert_from_row(row)
                self.last_seen = alert.id
                count += 1
                if self._taken and self._take(alert.id):
                    continue
                self._route_safely(alert)
            if len(rows) < BATCH:
                break
        if limit is not None and (self._full(limit) or len(self._submitted)):
            asyncio.get_running_loop().call_soon(self.waker.wake)  # after a loop turn
        count += flush(self.grouper, self, self.clock())
        self._write_round()
        return count

    def _full(self, limit: int | None) -> bool:
        """Whether this round has used its budget of messages (never without a limit)."""
        return limit is not None and self._puts >= ROUND_MESSAGES

    def _write_round(self) -> None:
        """Record, once per round, the de-duplication keys as they are now and when firing
        alerts were seen again."""
        self.firing.write_seen()
        with self._keys_lock:
            if not self._dirty_keys:
                return
            dirty, self._dirty_keys = self._dirty_keys, set()
            saved = [(k, *self.keys[k]) for k in dirty if k in self.keys]
            gone = [k for k in dirty if k not in self.keys]
            self.writer.record(sql.write_keys, saved, gone)

    def _take(self, alert_id: int) -> bool:
        """Whether a stored alert was routed from memory already (then forgotten here)."""
        with self._lock:
            if len(self._taken) > BATCH:  # routed, and their outcome committed: never seen
                self._taken = {i for i in self._taken if i >= self.last_seen}
            found = alert_id in self._taken
            self._taken.discard(alert_id)
            return found

    def _route_safely(self, alert: Alert) -> None:
        """One bad alert (a hook that set nonsense) is recorded ``failed``; others go on."""
        try:
            self.route(alert)
        except Exception as exc:
            log.exception("alert %s could not be routed", alert.id or alert.text[:40])
            alert.outcome = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}
            self._save(alert)

    def submit_stored(self, alerts: list[Alert]) -> None:
        """Route ``alerts``, stored in state ``new`` by this process (the HTTP listener), from
        memory: the look for stored alerts skips them."""
        with self._lock:
            first = not self._submitted
            self._submitted.extend(alerts)
            self._taken.update(a.id for a in alerts)
        if first:
            self.waker.wake()

    def _save(self, alert: Alert) -> None:
        if alert.id:
            self.writer.record(sql.set_outcome, alert)
        else:
            self.writer.record(sql.insert_routed_op, alert)

    # --- routing ----------------------------------------------------------------------------

    def recipients_for(self, alert: Alert) -> tuple[list[User], list[Room], list[str]]:
        """The users and rooms ``alert`` goes to, and the hook-given names matching
        neither. A hook's ``room:<id>`` reaches that group whether or not lcbot.toml lists it."""
        directory, rooms = self.people.directory, self.people.rooms
        if alert.recipients is None:
            least = self.settings.routes.get(alert.level, Pri.ROOT)
            users = [u for u in directory if u.pri <= least]
            return users, [r for r in rooms if r.receives(alert.level)], []
        return named_recipients(alert.recipients, directory, rooms, alert.level)

    def route(self, alert: Alert) -> dict[str, Any]:
        """Hooks → inhibition → silences → de-duplication → routes → mutes → outbox.
        Returns the outcome."""
        now = self.clock()
        outcome: dict[str, Any] = {}
        passed = self.on_alert(alert)
        if alert.level not in LEVELS:
            log.warning("alert %s: hook set unknown level %r; using warning", alert.id, alert.level)
            alert.level = "warning"
        if not isinstance(alert.text, str) or not alert.text:
            raise TypeError(f"a hook set alert.text to {alert.text!r}")
        alert.text = clean_text(alert.text)  # a hook may have added undecodable text
        if isinstance(alert.title, str):
            alert.title = clean_text(alert.title)
        if isinstance(alert.key, str):
            alert.key = clean_text(alert.key)
        if alert.recipients is not None and (
            not isinstance(alert.recipients, list | tuple)
            or not all(isinstance(r, str) for r in alert.recipients)
        ):
            raise TypeError(f"a hook set alert.recipients to {alert.recipients!r}")
        if not passed:
            outcome["state"] = "suppressed"
        elif by := self.inhibitor.check(alert.labels, alert.resolved, now):
            outcome = {"state": "inhibited", "inhibited_by": format_labels(by.labels)}
            outcome["fingerprint"] = by.source
        elif alert.key and self._silenced(alert.key, now):
            outcome["state"] = "silenced"
        elif silence := self.label_silences.silencing(alert.labels, now):
            outcome = {"state": "silenced", "silence": silence.id}
        elif self.grouper.enabled:
            outcome = {"state": "grouped", "group": self.grouper.add(alert, now).name}
        elif self.count_repeat(alert, now):
            outcome["state"] = "deduplicated"
        else:
            outcome = self.send(alert, self.note_key(alert, now), now)
        alert.outcome = outcome
        self.firing.track(alert, outcome, now)  # firing state: registered, refreshed, cleared
        self._save(alert)
        return outcome

    def _now(self) -> float:
        return self.clock()  # tests replace ``clock``

    def _forget_key(self, key: str) -> None:
        with self._keys_lock:  # also from chat threads (``resolve``)
            self._dirty_keys.discard(key)
            if self.keys.pop(key, None) is not None:
                self.writer.record(sql.delete_key, key)

    def count_repeat(self, alert: Alert, now: float) -> bool:
        """Whether ``alert`` repeats a key within its repeat interval (then counted)."""
        if not (alert.key and not alert.resolved and self._is_repeat(alert.key, now)):
            return False
        last_sent, repeats, since = self.keys[alert.key]
        self._set_key(alert.key, last_sent, repeats + 1, since or alert.created)
        return True

    def save_grouped(self, alert: Alert) -> None:
        """A grouped alert's outcome (its row was written when it was grouped); it fires
        from now on like an alert sent alone."""
        self.firing.track(alert, alert.outcome, self.clock())
        self.writer.record(sql.set_outcome, alert)  # after that insert: alert.id is set

    def note_key(self, alert: Alert, now: float) -> str:
        """Record ``alert`` as sent for de-duplication; the text it goes with."""
        text = alert.message()
        if alert.key and alert.resolved:
            self._forget_key(alert.key)
        elif alert.key:
            _, repeats, since = self.keys.get(alert.key, (0.0, 0, None))
            text = alert.message(repeats, since)
            self._set_key(alert.key, now, 0, None)
        return text

    def send(self, alert: Alert, text: str, now: float) -> dict[str, Any]:
        """Put ``text`` to ``alert``'s recipients (the one on call first if critical)."""
        to, muted, unbound = [], [], []
        users, rooms, unknown = self.recipients_for(alert)
        if alert.level == "critical" and self.on_call is not None:
            name = self.on_call(now)
            users = put_first(users, name and self.people.directory.by_name(name))
        for user in users:
            if not self.people.reachable(user):
                unbound.append(user.name)
            else:
                (muted if self.mutes.get(user.name, 0) > now else to).append(user.name)
        kind, priority = f"alert:{alert.level}", PRIORITY[alert.level]
        recipients = [*to, *(room.recipient for room in rooms)]
        for recipient in recipients:
            self.writer.put(recipient, text, kind, priority)
        self._puts += len(recipients)
        state = "delivered" if to or rooms else "no recipients"
        outcome: dict[str, Any] = {"state": state, "to": to}
        if rooms:
            outcome["rooms"] = [{"id": r.id, "topic": r.topic} for r in rooms]
        for name, value in (("muted", muted), ("unbound", unbound), ("unknown", unknown)):
            if value:
                outcome[name] = value
        return outcome

    def _is_repeat(self, key: str, now: float) -> bool:
        entry = self.keys.get(key)
        return entry is not None and now - entry[0] < self.settings.repeat_interval

    def _set_key(self, key: str, last_sent: float, repeats: int, since: float | None) -> None:
        self.keys[key] = (last_sent, repeats, since)
        self._dirty_keys.add(key)  # on the loop only; written at the round's end

    # --- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        await poll_loop(self.waker, POLL, lambda: self.route_pending(ROUND), log, "route alerts")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        """Route while the bot runs; at a clean stop, route what was raised so far."""
        self.waker.bind()
        self._loop_thread = threading.get_ident()
        self.open()
        self.waker.wake()  # alerts stored while the bot was stopped go out now
        async with (
            background(self.run(), "lcbot-router") as task,
            self.escalation.running(),
        ):
            yield task
            self.route_pending()
            flush(self.grouper, self, self.clock(), everything=True)  # groups still waiting
            self._write_round()
