"""The controls ``bot`` hands plugins over the bot's parts (``bot.alerts``, ``bot.rooms``,
``bot.heartbeats``, ``bot.approvals``, ``bot.audit``, ``bot.linking``): thin wrappers that
take only the part they steer, each behind a small Protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from lcbot.beats import Heartbeat
from lcbot.firing import FiringAlert
from lcbot.matchers import Matcher, parse_matcher
from lcbot.rooms import Room, check_level, find_room
from lcbot.silencing import Silence
from lcbot.users import User


class SilenceStore(Protocol):
    """The router's silences by label matchers (``lcbot.silencing.LabelSilences``)."""

    def add(
        self, matchers: Sequence[Matcher], seconds: float, author: str, comment: str | None
    ) -> Silence: ...

    def expire(self, silence_id: str) -> Silence | None: ...

    def active(self) -> list[Silence]: ...


class FiringStore(Protocol):
    """The firing alerts (``lcbot.firing.Firing``)."""

    def listing(self) -> list[FiringAlert]: ...

    def ack(self, ref: str, by: str) -> FiringAlert: ...

    def unack(self, ref: str, by: str) -> FiringAlert: ...

    def resolve(self, ref: str, by: str) -> FiringAlert: ...


class Controls(Protocol):
    """What ``bot.alerts`` reaches (the alert router)."""

    label_silences: SilenceStore
    firing: FiringStore

    def mute(self, user: str, seconds: float) -> float: ...

    def unmute(self, user: str) -> bool: ...

    def silence(self, key: str, seconds: float, by: str) -> None: ...

    def unsilence(self, key: str) -> bool: ...

    def active_silences(self) -> list[tuple[str, float, str]]: ...


class AlertControls:
    """``bot.alerts``: silences, mutes and firing alerts — and nothing else of the router."""

    __slots__ = ("_router",)

    def __init__(self, router: Controls) -> None:
        self._router = router

    def mute(self, user: str, seconds: float) -> float:
        """Pause alerts to ``user`` for ``seconds``; returns when the mute ends (epoch)."""
        return self._router.mute(user, seconds)

    def unmute(self, user: str) -> bool:
        """End ``user``'s mute; False if there was none."""
        return self._router.unmute(user)

    def silence(self, key: str, seconds: float, by: str) -> None:
        """Drop alerts with ``key`` for ``seconds`` (``by``: who asked)."""
        self._router.silence(key, seconds, by)

    def unsilence(self, key: str) -> bool:
        """End the silence of ``key``; False if there was none."""
        return self._router.unsilence(key)

    def active_silences(self) -> list[tuple[str, float, str]]:
        """``(key, until, by)`` of each silence in force."""
        return self._router.active_silences()

    def silence_matching(
        self,
        matchers: Sequence[str | Matcher],
        seconds: float,
        by: str,
        comment: str | None = None,
    ) -> Silence:
        """Drop alerts whose labels match every matcher (texts such as ``host=db1`` or
        ``alertname=~"Disk.*"``) for ``seconds``; ``ValueError`` for a bad matcher."""
        parsed = [m if isinstance(m, Matcher) else parse_matcher(m) for m in matchers]
        return self._router.label_silences.add(parsed, seconds, by, comment)

    def expire_silence(self, silence_id: str) -> Silence | None:
        """End the silence by matchers ``silence_id``; it, or None if none was in force."""
        return self._router.label_silences.expire(silence_id)

    def matcher_silences(self) -> list[Silence]:
        """The silences by matchers in force, oldest first."""
        return self._router.label_silences.active()

    def firing(self) -> list[FiringAlert]:
        """The alerts firing now, newest first (copies: ``id``, ``level``, ``text``,
        ``labels``, ``recipients``, ``first_seen``, ``acked_by``, …)."""
        return self._router.firing.listing()

    def ack(self, ref: str, by: str) -> FiringAlert:
        """``by`` acknowledges the firing alert ``ref`` (short id or key): no more
        re-notification or escalation; its other recipients are told. LookupError if none."""
        return self._router.firing.ack(ref, by)

    def unack(self, ref: str, by: str) -> FiringAlert:
        """Withdraw the acknowledgement: re-notification starts again."""
        return self._router.firing.unack(ref, by)

    def resolve(self, ref: str, by: str) -> FiringAlert:
        """Resolve the firing alert ``ref`` by hand; its recipients are told."""
        return self._router.firing.resolve(ref, by)


class RoomStore(Protocol):
    """What ``bot.rooms`` reaches (the roster)."""

    rooms: tuple[Room, ...]

    def set_room(self, room_id: str, level: str, topic: str | None) -> Room: ...

    def remove_room(self, room_id: str) -> Room | None: ...


class RoomControls:
    """``bot.rooms``: the group chats that receive alerts (``[[rooms]]`` of lcbot.toml)."""

    __slots__ = ("_roster",)

    def __init__(self, roster: RoomStore) -> None:
        self._roster = roster

    def __iter__(self):
        return iter(self._roster.rooms)

    def __len__(self) -> int:
        return len(self._roster.rooms)

    def get(self, room_id: str) -> Room | None:
        """The room ``room_id`` if it receives alerts, else None."""
        return find_room(list(self._roster.rooms), room_id)

    def set_alerts(self, room_id: str, level: str, topic: str | None = None) -> Room:
        """Send alerts of ``level`` and above to group chat ``room_id`` (stored in
        lcbot.toml; a ``topic`` given replaces the stored one). Blocking: call it from a
        plain ``def`` handler. ``ValueError`` for an unknown level or a bad id."""
        check_level(level)
        return self._roster.set_room(room_id, level, topic)

    def stop_alerts(self, room_id: str) -> Room | None:
        """Stop alerts to ``room_id`` (its entry leaves lcbot.toml); the room it was, or
        None. Blocking, like ``set_alerts``."""
        return self._roster.remove_room(room_id)


class HeartbeatStore(Protocol):
    """What ``bot.heartbeats`` reaches (``lcbot.heartbeats.Heartbeats``)."""

    def beat(
        self, key: str, every: float, grace: float = 0.0, source: str = "job", level: str = ...
    ) -> None: ...

    def remove(self, key: str) -> bool: ...

    def listing(self) -> list[Heartbeat]: ...


class HeartbeatControls:
    """``bot.heartbeats``: the dead-man's switches (``lcbot heartbeat``, ``POST
    /heartbeat/KEY``): list them, beat one, remove one."""

    __slots__ = ("_plugin", "_store")

    def __init__(self, store: HeartbeatStore, plugin: str | None = None) -> None:
        self._store = store
        self._plugin = plugin

    def __iter__(self):
        """The heartbeats by key (copies: ``.key``, ``.every``, ``.grace``, ``.level``,
        ``.last_beat``, ``.due``, ``.is_late(now)``)."""
        return iter(self._store.listing())

    def __len__(self) -> int:
        return len(self._store.listing())

    def beat(self, key: str, every: float, grace: float = 0.0, level: str = "warning") -> None:
        """Record a beat of ``key`` now: late after ``every + grace`` seconds without
        another (an alert of ``level``); ``ValueError`` for a bad field."""
        self._store.beat(key, every, grace, source=self._plugin or "plugin", level=level)

    def remove(self, key: str) -> bool:
        """Forget heartbeat ``key`` (a late one's alert is resolved); False if none."""
        return self._store.remove(key)

    def for_plugin(self, plugin: str) -> HeartbeatControls:
        return HeartbeatControls(self._store, plugin)


class Desk(Protocol):
    """What ``bot.approvals`` reaches (``lcbot.approval.Gate``)."""

    def approve(self, request_id: str, approver: User) -> tuple[str, Any]: ...

    def deny(self, request_id: str, approver: User) -> str: ...

    def listing(self) -> list[str]: ...


class ApprovalControls:
    """``bot.approvals``: commands waiting for a second admin's approval. Call it on the
    event loop (from ``async def`` handlers)."""

    __slots__ = ("_desk",)

    def __init__(self, desk: Desk) -> None:
        self._desk = desk

    def approve(self, request_id: str, approver: User) -> str:
        """``approver`` approves request ``request_id`` (it runs now); the answer for them."""
        return self._desk.approve(request_id, approver)[0]

    def deny(self, request_id: str, approver: User) -> str:
        """``approver`` refuses request ``request_id``; the answer for them."""
        return self._desk.deny(request_id, approver)

    def waiting(self) -> list[str]:
        """One line per request waiting for approval."""
        return self._desk.listing()


class AuditLog(Protocol):
    """What ``bot.audit`` reaches (``lcbot.audit.Audit``)."""

    def recent(
        self, limit: int, user: str | None = None, since: float | None = None
    ) -> list[dict[str, Any]]: ...


class AuditView:
    """``bot.audit``: the audit log, read-only and blocking (plain ``def`` handlers)."""

    __slots__ = ("_log",)

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def recent(
        self, limit: int = 20, user: str | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        """The latest ``limit`` invocations (of ``user``, from epoch ``since``), newest first."""
        return self._log.recent(limit, user, since)


class Linking(Protocol):
    """Linking users' WeChat from chat (the ilink transport's ``ChatLinks``)."""

    def start(self, user: str, tell: Callable[[str], None], number: str | None = None) -> str: ...
