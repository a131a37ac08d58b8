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
from typing import Any

from lcbot.alerts import Alert, make_alert
from lcbot.commands import Command, PluginRegistry, Registry
from lcbot.controls import (
    AlertControls,
    ApprovalControls,
    AuditLog,
    AuditView,
    HeartbeatControls,
    Linking,
    RoomControls,
)
from lcbot.metrics import Metrics, MetricsView
from lcbot.oncall import OnCall
from lcbot.scheduler import Job, Scheduler
from lcbot.state import PluginState, StateStore
from lcbot.users import Directory, User


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
    oncall: OnCall | None = None  # who is on call ([oncall]); `oncall take`
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
        """Silences, mutes and firing alerts: ``mute``, ``unmute``, ``silence``,
        ``unsilence``, ``active_silences``, ``firing``, ``ack``, ``unack``, ``resolve``."""
        return self._core.alerts

    @property
    def linking(self) -> Linking | None:
        """Linking a user's WeChat by QR code from chat (``start(user, tell, number)``);
        None unless the transport is ilink."""
        return self._core.linking

    @property
    def oncall(self) -> OnCall | None:
        """Who is on call: ``shift(now)`` (``.user``, ``.until``, ``.by``), ``on_call(now)``,
        ``take(user, by)`` (until the next handover; stored), ``describe()``, ``rota``."""
        return self._core.oncall

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
        labels: dict[str, str] | None = None,
    ) -> Alert:
        """Raise an alert (checked at once: ``ValueError`` names a bad field) with
        ``labels`` (names ``[a-zA-Z_][a-zA-Z0-9_]*``, text values) for silences and
        inhibition. Returns it; its ``id`` is set once it is stored, within milliseconds.
        From a thread other than the loop's it waits (at most 1 s) while 1,000 alerts wait
        to be routed."""
        alert = make_alert(text, level, title, key, resolved, source or self.plugin, labels=labels)
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
