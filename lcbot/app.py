"""The App: the composition root. It builds every component, gives each only what it uses,
and starts them as one stack (``contextlib.AsyncExitStack``): each start registers its own
stop, ``stop()`` unwinds the stack, and a failed start unwinds what had started.

Nothing below this module holds or imports the App. The flows, as direct calls and queues:

* commands: transport → ``Dispatcher.handle`` → handler → ``Outbox.put`` → (commit) →
  ``Feed`` → ``Drainer`` → ``transport.send``;
* alerts: ``bot.alert`` / ``ctx.alert`` → ``AlertRouter.submit``; ``lcbot alert``, HTTP →
  ``alerts`` table → router; router → ``Outbox.put`` → … as above;
* heartbeats: ``lcbot heartbeat``, HTTP → ``heartbeats`` table → ``Heartbeats`` (and
  ``Heartbeats.beat`` in-process) → late / back alerts → ``AlertRouter.submit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from typing import Any

from lcbot.alert_store import AlertStore
from lcbot.alerts import Alert, AlertSettings
from lcbot.bot import Bot, BotCore
from lcbot.commands import Registry
from lcbot.config import Config
from lcbot.controls import AlertControls, ApprovalControls, HeartbeatControls, RoomControls
from lcbot.db import DB_NAME, Database
from lcbot.dispatch import Dispatcher
from lcbot.drainer import Drainer, Pacing
from lcbot.fallback import fallback_for
from lcbot.files import FileStore
from lcbot.grouping import Grouper
from lcbot.handlers import Runner
from lcbot.heartbeats import Heartbeats
from lcbot.ingress import Ingress, IngressSettings
from lcbot.jobhttp import JobExchange
from lcbot.jobhub import JobHub
from lcbot.jobsock import JobSocket
from lcbot.message import Feed
from lcbot.metrics import Metrics
from lcbot.notices import notifier
from lcbot.oncall import OnCall
from lcbot.outbox import Outbox
from lcbot.pairing import Binder, attempt
from lcbot.plugins import PluginHost, load_host
from lcbot.process import data_dir_lock, signal_handlers
from lcbot.retention import Retention
from lcbot.roster import Roster
from lcbot.router import AlertRouter
from lcbot.safety import Safety
from lcbot.scheduler import Scheduler
from lcbot.sections import plugin_sections
from lcbot.state import StateStore
from lcbot.transports.base import Transport
from lcbot.watchdog import LoopWatchdog
from lcbot.workers import HandlerPool

log = logging.getLogger("lcbot.app")


class App:
    """One bot. ``await app.run()`` until quit, a signal, or the end of input."""

    def __init__(
        self, config: Config, transport: Transport, plugins: PluginHost | None = None
    ) -> None:
        self.config = config
        self.transport = transport
        self.plugins = plugins or load_host(config.plugins.dirs, config.plugins.disable)
        settings = config.settings
        self.sections = plugin_sections(
            self.plugins, config
        )  # ConfigError (exit 2) on a bad plugin section
        for key in config.unknown_keys():
            log.warning("%s: unknown key %s (ignored)", config.path, key)
        self.registry = self.plugins.register_commands(Registry())
        self.db = Database(config.bot.data_dir / DB_NAME)
        self.roster = Roster(config.users, transport.identity, config.path, config.rooms)
        feed = Feed()
        pacing = Pacing.from_settings(settings["ratelimit"], transport.paced)
        max_size, limit_by = settings["files"]["max_size"], "[files] max_size"
        if transport.max_file_size is not None and transport.max_file_size < max_size:
            max_size, limit_by = transport.max_file_size, f"what {transport.name} carries"
        files = FileStore(config.bot.data_dir, max_size, limit_by)
        self.outbox = Outbox(
            self.db, feed, max_text=pacing.max_chars * pacing.max_parts, files=files
        )
        self.drainer = Drainer(
            feed,
            self.outbox,
            transport,
            self.roster.address,
            pacing,
            load=self.outbox.pending_for,
            files=files,
        )
        alert_settings = AlertSettings.from_settings(settings["alerts"], settings["storage"])
        self.oncall = OnCall.for_config(config, self.outbox.record)
        self.router = AlertRouter(
            alert_settings, self.db, self.outbox, self.roster, self.plugins.on_alert
        )
        self.router.grouper = Grouper.from_settings(settings["alerts"])
        self.router.on_call = self.oncall.on_call
        self.metrics = Metrics(self.db, self.outbox.record, alert_settings.keep)
        self.heartbeats = Heartbeats(self.db, self.outbox.record, self.router.submit)
        self.scheduler = Scheduler()
        self.plugins.on_disable.append(self.scheduler.cancel_owner)
        self.pool = HandlerPool(config.bot.workers)
        self.state = StateStore(self.outbox.record)
        self.safety = Safety.build(settings["bot"], self.db, self.outbox.record, self.outbox.put,
                                   transport.name, alert_settings.keep)  # fmt: skip
        self.core = BotCore(
            name=config.bot.name,
            submit=self.router.submit,
            put=self.outbox.put,
            put_file=self.outbox.put_file,
            scheduler=self.scheduler,
            section=self.sections.get,
            directory=lambda: self.roster.directory,
            state=self.state,
            registry=self.registry,
            allowed=self.plugins.policy.allowed,
            alerts=AlertControls(self.router),
            jobs=lambda: self.jobs.lines(),
            rooms=RoomControls(self.roster),
            metrics=self.metrics,
            heartbeats=HeartbeatControls(self.heartbeats),
            linking=getattr(transport, "chat_links", lambda bind: None)(self.roster.bind),
            oncall=self.oncall,
            approvals=ApprovalControls(self.safety.gate),
            audit=self.safety.audit,
        )
        binder = self.binder = Binder(self._attempt, self.roster.bind, self.outbox.put)
        transport.admit_contact = self._admit_contact
        transport.may_invite = self.roster.may_invite
        transport.wake = self.drainer.wake  # a gated transport's hold may have lifted
        transport.notify = notifier(self.outbox.put, lambda: self.roster.directory)
        self.runner = Runner(
            self.pool,
            self.outbox.put,
            self.core.for_plugin,
            config.bot.slow_notice,
            self.outbox.put_file,
        )
        self.watchdog = LoopWatchdog(self.runner.describe, self.runner.notify_slow)
        self.dispatcher = Dispatcher(
            registry=self.registry,
            people=self.roster,
            denial=self.plugins.policy.denial,
            allowed_users=self.plugins.policy.allowed_users,
            put=self.outbox.put,
            runner=self.runner,
            strangers=binder.handle,
            request_stop=self.request_stop,
            safety=self.safety,
        )
        self.jobs = JobHub(
            self.registry,
            self.outbox.put,
            self.router.submit,
            self._steerers,
            on_metric=self.metrics.record,
            on_heartbeat=self.heartbeats.beat,
            seen_file=config.bot.data_dir / "jobs-seen.json",
        )
        self.job_socket = JobSocket(self.jobs, config.bot.data_dir)
        self.fallback = fallback_for(
            alert_settings, self.db, self.outbox.record, transport, config.bot.name, config.path
        )
        ingress = IngressSettings.from_settings(settings["ingress"])
        if ingress.enabled:
            ingress.check_exposure(str(config.path))  # before anything starts
        self.alert_store = AlertStore(self.db, self.router.submit_stored)
        self.ingress = (
            Ingress(
                ingress,
                self._store_alerts,
                self.health,
                self.heartbeats.store,
                JobExchange(self.jobs),
            )
            if ingress.enabled
            else None
        )
        keep = alert_settings.keep
        self.retention = Retention(
            [
                lambda now, limit: self.outbox.expire(now - keep, limit),
                self.router.expire,
                self.metrics.expire,
                self.safety.audit.expire,
            ]
        )
        self.failed = False  # an internal task died: `lcbot run` exits 1
        self.stop_timeout = config.bot.stop_timeout  # for running commands and the drain
        self._stop_by: float | None = None  # loop time by which a stop must be done
        self._stack: contextlib.AsyncExitStack | None = None
        self._drainer_task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals = 0

    def _steerers(self, commands: list[Any]) -> list[Any]:
        """The reachable users allowed to run any of ``commands`` (all of them if none)."""
        users = self.roster.reachable_users()
        if not commands:
            return list(users)
        allowed = {
            u.name for c in commands for u in self.plugins.policy.allowed_users(users, c, None)
        }
        return [u for u in users if u.name in allowed]

    async def _admit_contact(self, contact: str, name: str, greeting: str) -> str | None:
        """A friend request: a contact already bound to a user is that user; a stranger
        whose greeting holds a valid pairing code becomes its user; others are refused."""
        known = self.roster.directory.by_wxid(contact)
        if known is not None:
            return known.name
        return await self.binder.admit(contact, name, greeting)

    # --- worker-thread database work --------------------------------------------------------

    async def _store_alerts(self, alerts: list[Alert]) -> list[int] | None:
        """Store alerts from the HTTP listener (a group commit on the loop, one savepoint per
        request); the router takes them in memory. None: the database stayed locked."""
        return await self.alert_store.store(alerts)

    def _attempt(self, contact: str, text: str) -> Any:
        with self.db.worker() as conn:
            return attempt(conn, contact, text)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, signals: bool = False) -> None:
        """Start every component in order; if one fails, stop those already started.
        An App starts once (build another to start again)."""
        if self._loop is not None:
            raise RuntimeError("this App has been started already; build a new one")
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            await self._start(stack, signals)
        except BaseException:
            await stack.__aexit__(*sys.exc_info())
            raise
        self._stack = stack

    async def _start(self, stack: contextlib.AsyncExitStack, signals: bool) -> None:
        if signals:
            stack.enter_context(signal_handlers(self._on_signal))
        stack.enter_context(data_dir_lock(self.config.bot.data_dir))
        stack.enter_context(self.db.opened())
        self.state.load(self.db.conn)
        self.oncall.open(self.db.conn)
        if self.ingress is not None:
            stack.enter_context(self.ingress.bound())  # a taken port fails here, early
        self._watch(await stack.enter_async_context(self.outbox.running()))
        self._watch(await stack.enter_async_context(self.metrics.running()))  # before its end
        stack.callback(self.pool.shutdown)
        stack.enter_context(self.watchdog.running())
        await self.transport.start(self.dispatcher.handle)
        stack.push_async_callback(self.transport.stop)
        drained = self.drainer.running(self._stop_left, lambda: self.outbox.dirty)
        self._drainer_task = await stack.enter_async_context(drained)
        self._watch(self._drainer_task)
        self._watch(await stack.enter_async_context(self.router.running()))
        self._watch(await stack.enter_async_context(self.heartbeats.running()))
        self._watch(await stack.enter_async_context(self.roster.running()))
        if self.fallback is not None:
            self._watch(await stack.enter_async_context(self.fallback.running()))
        self._watch(await stack.enter_async_context(self.retention.running()))
        stack.enter_context(self.scheduler.running(self._loop, self.dispatcher.run_sync))
        await self.plugins.startup(self.core)
        stack.push_async_callback(self.plugins.shutdown, self.core)
        await stack.enter_async_context(self.dispatcher.serving(self._stop_left))
        await stack.enter_async_context(self.job_socket.serving())
        if self.ingress is not None:
            await stack.enter_async_context(self.ingress.serving())

    async def stop(self, timeout: float | None = None) -> None:
        """Unwind the start stack: the listener closes, running commands finish (bounded),
        shutdown hooks run, pending messages are sent (bounded), then everything closes."""
        if timeout is not None:
            self.stop_timeout = timeout
        self._stop_by = asyncio.get_running_loop().time() + self.stop_timeout
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    def _stop_left(self) -> float:
        """Seconds the stop may still wait (one budget: ``[bot] stop_timeout``)."""
        if self._stop_by is None:
            return self.stop_timeout
        return max(0.0, self._stop_by - asyncio.get_running_loop().time())

    async def run(self) -> int:
        """Start, wait for a stop request (or the transport's end of input), stop cleanly.
        Returns the exit status: 1 if an internal task failed, else 0."""
        await self.start(signals=True)
        assert self._stop is not None
        finished = asyncio.ensure_future(self.transport.finished.wait())
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({finished, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            finished.cancel()
            stopped.cancel()
            await self.stop()
        return 1 if self.failed else 0

    async def drain(self, timeout: float = 30.0) -> bool:
        """Route the alerts raised so far and wait until every message is sent (or
        ``timeout``); True if all were."""
        self.router.route_pending()
        return await self.drainer.drain(timeout, lambda: self.outbox.dirty, self._drainer_task)

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested (quit, a signal, an internal failure)."""
        return self._stop is not None and self._stop.is_set()

    def request_stop(self) -> None:
        """Ask the bot to stop (any thread). Pending messages are drained first."""
        if self._loop is None or self._stop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed already
            self._loop.call_soon_threadsafe(self._stop.set)

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            log.warning("stopping: sending pending messages (signal again to quit at once)")
            self.request_stop()
        else:
            log.warning("second signal: quitting now; unsent messages go at the next start")
            os._exit(1)

    def _watch(self, task: asyncio.Task[Any]) -> None:
        """A background task must never end while the bot runs: log it and stop the bot."""

        def ended(task: asyncio.Task[Any]) -> None:
            if task.cancelled():
                return
            log.critical(
                "internal task %s ended: %r; stopping",
                task.get_name(),
                task.exception(),
                exc_info=task.exception(),
            )
            self.failed = True
            self.request_stop()

        task.add_done_callback(ended)

    # --- observing ------------------------------------------------------------------------

    def bot(self, plugin: str) -> Bot:
        """Plugin ``plugin``'s view of this bot (what its hooks and handlers get)."""
        return self.core.for_plugin(plugin)

    def health(self) -> dict[str, Any]:
        """What ``GET /healthz`` answers (from memory: no database query)."""
        transport = self.transport
        status = transport.status()
        down_since = status.get("down_since")
        ready = transport.ready
        counts = self.outbox.counts
        extra = {k: v for k, v in status.items() if k not in ("down_since", "logged_in_as")}
        return {
            "transport": {
                "name": transport.name,
                "ready": ready,
                "logged_in_as": status.get("logged_in_as"),
                "down_for_seconds": None
                if ready or not isinstance(down_since, float)
                else round(time.monotonic() - down_since, 1),
                **extra,
            },
            "outbox": {state: counts[state] for state in ("pending", "sent", "dead")},
            "last_sent": self.outbox.last_sent_at,
        }
