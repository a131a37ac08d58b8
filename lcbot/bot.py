"""``bot``: what a plugin sees of the running bot — the whole public API beside ``ctx``.

One ``Bot`` per plugin per running bot: ``lcbot_startup(bot)``, ``lcbot_shutdown(bot)`` and
``ctx.bot`` in that plugin's handlers. ``bot.config`` is the plugin's own section and
``bot.state`` its own store, so two bots in one process never share a plugin's state.
Keep per-bot state there (or on objects reached from here), never in module globals.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lcbot.alerts import Alert, make_alert
from lcbot.beats import Heartbeat
from lcbot.commands import Command, PluginRegistry, Registry
from lcbot.metrics import Metrics, MetricsView
from lcbot.rooms import Room, check_level, find_room
from lcbot.scheduler import Job, Scheduler
from lcbot.state import PluginState, StateStore
from lcbot.users import Directory, User


class Controls(Protocol):
    """What ``bot.alerts`` reaches (the alert router)."""

    def mute(self, user: str, seconds: float) -> float: ...

    def unmute(self, user: str) -> bool: ...

    def silence(self, key: str, seconds: float, by: str) -> None: ...

    def unsilence(self, key: str) -> bool: ...

    def active_silences(self) -> list[tuple[str, float, str]]: ...


class AlertControls:
    """``bot.alerts``: silences and mutes — and nothing else of the router."""

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


@dataclass
class BotCore:
    """What the composition root gives the plugin API (shared by every plugin's ``Bot``)."""

    name: str
    submit: Callable[[Alert], Alert]  # hand an alert to the router
    put: Callable[..., None]  # queue a message (the outbox)
    put_file: Callable[..., None]  # save a file and queue it (the outbox)
    scheduler: Scheduler
    section: Callable[[str], dict[str, Any]]  # a plugin's configuration
    directory: Callable[[], Directory]  # the current users
    state: StateStore
    registry: Registry
    allowed: Callable[[User, Command, str | None], bool]
    alerts: AlertControls
    rooms: RoomControls
    metrics: Metrics
    heartbeats: HeartbeatControls
    jobs: Callable[[], list[str]] = lambda: []  # one line per job (connected, then gone)
    linking: Linking | None = None  # `link NAME` from chat (the ilink transport only)
    approvals: ApprovalControls | None = None  # requests waiting for a second admin
    audit: AuditLog | None = None  # the audit log of commands
    _bots: dict[str, Bot] = field(default_factory=dict, repr=False)

    def for_plugin(self, plugin: str) -> Bot:
        """Plugin ``plugin``'s ``Bot`` (one per plugin)."""
        bot = self._bots.get(plugin)
        if bot is None:
            bot = self._bots[plugin] = Bot(self, plugin)
        return bot


class Bot:
    """The running bot as plugin ``plugin`` sees it. Every method is safe from any thread."""

    def __init__(self, core: BotCore, plugin: str) -> None:
        self._core = core
        self.plugin = plugin
        self.log = logging.getLogger(f"lcbot.plugin.{plugin}")

    @property
    def name(self) -> str:
        """The bot's name (``[bot] name``)."""
        return self._core.name

    @property
    def config(self) -> dict[str, Any]:
        """This plugin's lcbot.toml section (checked values with defaults when the plugin
        declares a ``config_schema``, else the raw table; ``{}`` when absent)."""
        return self._core.section(self.plugin)

    @property
    def state(self) -> PluginState:
        """This plugin's persistent key/value store (JSON values)."""
        return self._core.state.for_plugin(self.plugin)

    @property
    def users(self) -> Directory:
        """The configured users, read-only: ``by_name(name)``, iteration, ``len``."""
        return self._core.directory()

    @property
    def registry(self) -> PluginRegistry:
        """This plugin's view of the command table (add, update, remove its commands)."""
        return self._core.registry.for_plugin(self.plugin)

    @property
    def alerts(self) -> AlertControls:
        """Silences and mutes: ``mute``, ``unmute``, ``silence``, ``unsilence``,
        ``active_silences``."""
        return self._core.alerts

    @property
    def linking(self) -> Linking | None:
        """Linking a user's WeChat by QR code from chat (``start(user, tell, number)``);
        None unless the transport is ilink."""
        return self._core.linking

    @property
    def approvals(self) -> ApprovalControls | None:
        """Commands waiting for approval: ``approve(id, user)``, ``deny(id, user)``,
        ``waiting()`` (on the event loop)."""
        return self._core.approvals

    @property
    def audit(self) -> AuditView | None:
        """The audit log of commands: ``recent(limit, user, since)`` (blocking)."""
        return None if self._core.audit is None else AuditView(self._core.audit)

    def jobs(self) -> list[str]:
        """One line per job program (``lcbot.job``): connected ones first (host, pid,
        uptime, status line, progress), then those that went away lately."""
        return self._core.jobs()

    @property
    def rooms(self) -> RoomControls:
        """The group chats that receive alerts: iteration, ``get``, ``set_alerts``,
        ``stop_alerts``."""
        return self._core.rooms

    @property
    def metrics(self) -> MetricsView:
        """The recorded metrics, read-only and blocking: ``series``, ``names``, ``sources``."""
        return MetricsView(self._core.metrics)

    def metric(
        self,
        name: str,
        value: float,
        step: int | None = None,
        source: str | None = None,
        at: float | None = None,
    ) -> None:
        """Record ``value`` of metric ``name`` (at epoch ``at``, default now) under this
        plugin's name, or ``source`` (``"host"``: the host's figures); ``plot`` charts it.
        ``ValueError`` for a bad name, value or step."""
        self._core.metrics.record(source or self.plugin, name, value, step, at)

    @property
    def heartbeats(self) -> HeartbeatControls:
        """Dead-man's switches: iteration, ``len``, ``beat(key, every, grace, level)``,
        ``remove(key)``."""
        return self._core.heartbeats.for_plugin(self.plugin)

    def alert(
        self,
        text: str,
        level: str = "info",
        title: str | None = None,
        key: str | None = None,
        resolved: bool = False,
        source: str | None = None,
    ) -> Alert:
        """Raise an alert (checked at once: ``ValueError`` names a bad field). Returns it;
        its ``id`` is set once it is stored, within milliseconds."""
        alert = make_alert(text, level, title, key, resolved, source or self.plugin)
        return self._core.submit(alert)

    def send(self, user: str | User, text: str) -> None:
        """Send ``text`` to a configured user (queued durably, paced like replies)."""
        self._core.put(self._recipient(user), str(text), "notice")

    def send_file(
        self, user: str | User, file: str | os.PathLike[str] | bytes, name: str | None = None
    ) -> None:
        """Send a file (a path, copied now, or bytes) to a configured user, named ``name``
        (default: the path's name, ``file.bin`` for bytes). Kept in the data dir until sent;
        ``FileTooLarge`` (a ``ValueError``) above ``[files] max_size``."""
        self._core.put_file(self._recipient(user), file, name, "notice")

    def _recipient(self, user: str | User) -> str:
        name = user.name if isinstance(user, User) else user
        found = self.users.by_name(name)
        if found is None:
            raise ValueError(f"no user named {name!r}")
        return found.name

    def every(self, seconds: float, fn: Callable[[], Any], name: str | None = None) -> Job:
        """Run ``fn`` (def or async def) every ``seconds``. Scheduling again under the same
        ``name`` replaces that job (e.g. with a new interval)."""
        return self._core.scheduler.every(seconds, fn, name, owner=self.plugin)

    def cron(self, expression: str, fn: Callable[[], Any], name: str | None = None) -> Job:
        """Run ``fn`` on a crontab schedule such as ``"*/5 * * * *"``; same ``name`` rule."""
        return self._core.scheduler.cron(expression, fn, name, owner=self.plugin)

    def commands(self, user: User | None = None) -> list[Command]:
        """The registered commands by name; with ``user``, only those they may run."""
        return [c for c in self._core.registry if user is None or self._core.allowed(user, c, None)]

    def __repr__(self) -> str:
        return f"<Bot {self.name!r} as seen by plugin {self.plugin!r}>"
