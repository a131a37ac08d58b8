"""The App wires configuration, plugins, commands, dispatch, outbox and a transport together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from lcbot.alerts import AlertRouter
from lcbot.asyncutil import wait_event
from lcbot.commands import Registry
from lcbot.config import Config
from lcbot.config import load as load_config
from lcbot.dispatch import Dispatcher
from lcbot.drainer import Drainer, Pacing
from lcbot.errors import LcbotError
from lcbot.fallback import Fallback, load_apprise
from lcbot.ingress import Ingress, IngressSettings
from lcbot.outbox import Outbox
from lcbot.pairing import Binder
from lcbot.plugins import PluginHost, load_host
from lcbot.scheduler import Job, Scheduler
from lcbot.store import DB_NAME
from lcbot.transports.base import Transport
from lcbot.users import Directory

log = logging.getLogger("lcbot.app")


FLUSH_DELAY = 0.005  # seconds: group-commit window (fewer, larger transactions; ≤ 5 ms latency)


def lock_data_dir(data_dir: Any) -> Any:
    """Hold an exclusive lock on ``data_dir`` so that two bots never share one outbox."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "lcbot.lock", "a")  # noqa: SIM115 (held while the bot runs)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise LcbotError(
            f"another lcbot is running with the data dir {data_dir}; stop it first"
        ) from None
    return handle


class App:
    """One running bot. ``await app.run()`` until quit, a signal, or the end of input."""

    def __init__(
        self, config: Config, transport: Transport, plugins: PluginHost | None = None
    ) -> None:
        self.config = config
        self.transport = transport
        self.directory = Directory(config.users)
        self.plugins = plugins if plugins is not None else load_host(config)
        self.registry = self.plugins.register_commands(Registry())
        where = str(config.path)
        self.outbox = Outbox(config.bot.data_dir / DB_NAME)
        self.dispatcher = Dispatcher(self)
        pacing = Pacing.from_config(config.section("ratelimit"), transport.paced, where)
        self.drainer = Drainer(self.outbox, transport, pacing)
        self.alerts = AlertRouter(self, config.bot.data_dir / DB_NAME)
        self.scheduler = Scheduler()
        urls = self.alerts.settings.fallback_urls
        self.fallback = (
            Fallback(self, load_apprise(urls, where), self.alerts.settings.fallback_after)
            if urls
            else None
        )
        self._alerts_wanted: asyncio.Event | None = None
        self.binder = Binder(self)
        ingress = IngressSettings.from_config(config.section("ingress"), where)
        if ingress.enabled:
            ingress.check_exposure(where)  # before anything starts
        self.ingress = Ingress(self, ingress) if ingress.enabled else None
        transport.address_of = self._address_of
        self._stop: asyncio.Event | None = None
        self._flush_wanted: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: Any = None  # the data_dir lock file, held while running
        self.failed = False  # an internal task died: `lcbot run` exits 1
        self._config_seen: int | None = None
        self._drain_task: asyncio.Task[Any] | None = None
        self._signals = 0

    def _address_of(self, name: str) -> str | None:
        user = self.directory.by_name(name)
        return user.wxid if user else None

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the outbox, start flusher and drainer, run startup hooks, start the transport."""
        self._loop = asyncio.get_running_loop()
        self._lock = lock_data_dir(self.config.bot.data_dir)
        self._config_seen = self._config_stamp()
        self.scheduler.bind(self._loop, self.dispatcher.run_sync)
        self._stop = asyncio.Event()
        self._flush_wanted = asyncio.Event()
        self._alerts_wanted = asyncio.Event()
        self.drainer.add(self.outbox.open())
        if self.drainer.pending:
            log.info("%d message(s) pending from an earlier run", self.drainer.pending)
        self.outbox.on_put = self._wake_flusher
        self.alerts.open()
        self.alerts.wake = lambda: self._wake(self._alerts_wanted)
        self._alerts_wanted.set()  # alerts raised while the bot was stopped go out now
        self._drain_task = asyncio.create_task(self.drainer.run(), name="lcbot-drainer")
        self._tasks = [
            asyncio.create_task(self._flusher(), name="lcbot-flusher"),
            self._drain_task,
            asyncio.create_task(self._poller(), name="lcbot-alerts"),
        ]
        if self.fallback is not None:
            self._tasks.append(asyncio.create_task(self.fallback.run(), name="lcbot-fallback"))
        for task in self._tasks:
            task.add_done_callback(self._task_ended)
        if self.ingress is not None:
            await self.ingress.start()
        await self.plugins.acall("lcbot_startup", app=self)
        await self.transport.start(self.dispatcher.handle)

    async def run(self, drain_timeout: float = 30.0) -> int:
        """Start, wait for a stop request (or the transport's end of input), stop cleanly."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal)
        assert self._stop is not None
        finished = asyncio.create_task(self.transport.finished.wait())
        stopped = asyncio.create_task(self._stop.wait())
        await asyncio.wait({finished, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finished.cancel()
        stopped.cancel()
        await self.stop(drain_timeout)
        return 1 if self.failed else 0

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            log.warning("stopping: sending pending messages (signal again to quit at once)")
            self.request_stop()
        else:
            log.warning("second signal: quitting now; unsent messages go at the next start")
            os._exit(1)

    def request_stop(self) -> None:
        """Ask the bot to stop (any thread). Pending messages are drained first."""
        if self._loop is None or self._stop is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Run shutdown hooks, drain the outbox (bounded), stop the transport, close."""
        if self.ingress is not None:
            await self.ingress.stop()
        if not await self.dispatcher.wait_idle(drain_timeout):
            log.warning("stopping while commands still run; their answers may be lost")
        await self.plugins.acall("lcbot_shutdown", app=self)
        self.alerts.route_new()  # alerts raised up to now go out with this drain
        if not await self.drain(drain_timeout):
            log.warning(
                "%d message(s) still pending; they are sent at the next start", self.drainer.pending
            )
        await self.transport.stop()
        self.scheduler.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.outbox.close()
        self.alerts.close()
        self.dispatcher.close()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    async def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued message is sent (or ``timeout``); True if all were."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._store()
            if not self.outbox.dirty and self.drainer.pending == 0:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or (self._drain_task is not None and self._drain_task.done()):
                return False  # out of time, or nothing is sending any more
            self.drainer.progress.clear()
            await wait_event(self.drainer.progress, min(remaining, 0.5))

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        """A background task must never end while the bot runs: log it and stop the bot."""
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

    # --- outbox flushing -----------------------------------------------------------------

    def reload_users(self, users: list) -> None:
        """Replace the user directory (after lcbot.toml changed, e.g. a contact was bound)."""
        self.directory = Directory(users)

    def _config_stamp(self) -> int | None:
        try:
            return self.config.path.stat().st_mtime_ns
        except OSError:
            return None

    def _reload_config_if_changed(self) -> None:
        """`lcbot user …` edits reach the running bot: users are re-read when the file changes.

        A file that does not validate is reported once and the current users stay.
        """
        stamp = self._config_stamp()
        if stamp is None or stamp == self._config_seen:
            return
        self._config_seen = stamp
        try:
            users = load_config(self.config.path).users
        except LcbotError as exc:
            log.warning("lcbot.toml changed but is not valid; keeping the current users: %s", exc)
            return
        self.reload_users(users)
        log.info("lcbot.toml changed: %d user(s) loaded", len(users))

    # --- public API for plugins ------------------------------------------------------------

    def alert(
        self,
        text: str,
        level: str = "info",
        title: str | None = None,
        key: str | None = None,
        resolved: bool = False,
        source: str | None = None,
    ) -> int:
        """Raise an alert (any thread); returns its id. See lcbot.alerts for what follows."""
        return self.alerts.raise_alert(text, level, title, key, resolved, source)

    def every(self, seconds: float, fn: Any, name: str | None = None) -> Job:
        """Run ``fn`` (def or async def) every ``seconds``; returns the Job."""
        return self.scheduler.every(seconds, fn, name)

    def cron(self, expression: str, fn: Any, name: str | None = None) -> Job:
        """Run ``fn`` on a crontab schedule such as ``"*/5 * * * *"``; returns the Job."""
        return self.scheduler.cron(expression, fn, name)

    # --- background tasks ------------------------------------------------------------------

    async def _poller(self) -> None:
        """Route new alerts (woken in-process, polled for other processes) and CLI retries."""
        assert self._alerts_wanted is not None
        while True:
            await wait_event(self._alerts_wanted, AlertRouter.POLL)
            self._alerts_wanted.clear()
            try:
                self.alerts.route_new()
                self.drainer.add(self.outbox.take_retries())
                self._reload_config_if_changed()
            except Exception:
                log.exception("could not route alerts; retrying")
                await asyncio.sleep(1)

    def _wake_flusher(self) -> None:
        self._wake(self._flush_wanted)

    def _wake(self, wanted: asyncio.Event | None) -> None:
        """Set ``wanted`` from any thread (cheap when it is already set)."""
        loop = self._loop
        if loop is None or wanted is None or wanted.is_set():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wanted.set()
        else:
            try:
                loop.call_soon_threadsafe(wanted.set)
            except RuntimeError:  # the bot has stopped; the message waits for the next start
                log.warning("a message was queued after the bot stopped")

    def _store(self) -> None:
        """Commit queued outbox writes and hand the new rows to the drainer."""
        self.drainer.add(self.outbox.flush())
        self.drainer.committed()

    async def _flusher(self) -> None:
        assert self._flush_wanted is not None
        while True:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            await asyncio.sleep(FLUSH_DELAY)  # let a burst of puts join this batch
            try:
                self._store()
            except Exception:
                log.exception("could not write the outbox; retrying")
                await asyncio.sleep(1)
                self._flush_wanted.set()
