"""The WeChat transport, on python-wechaty (PyPI ``wechaty==0.10.7``) and a puppet service.

Imported only when this transport starts. Connection: ``WECHATY_PUPPET_SERVICE_ENDPOINT``
(or ``[wechaty] endpoint``) and the token from ``WECHATY_PUPPET_SERVICE_TOKEN`` (or the
variable named by ``[wechaty] token_env``); the token is never stored nor logged.

Life of a connection: a supervisor creates a fresh ``Wechaty`` per attempt (an instance
cannot be restarted once stopped), sends Start (never Stop: on wechaty-puppet 1.x Stop logs
the account out, see ``wechaty_compat.session``), reads the event stream, and when the
stream ends, fails or goes deaf reconnects with backoff (1 s … 60 s). A failure is one
line when its reason changes, then quiet retries; the reason is in ``/healthz``. The
drainer sends only while logged in; a send has ``[wechaty] send_timeout``; with no event
for ``[wechaty] liveness`` the puppet is probed with a ding (``wechaty_liveness``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from lcbot.errors import ConfigError
from lcbot.transports.base import Address, OnMessage, Transport, Undeliverable
from lcbot.transports.wechaty_inbound import FILE_TRANSFER, Owner, incoming
from lcbot.transports.wechaty_liveness import Liveness
from lcbot.transports.wechaty_login import LoginTracker
from lcbot.transports.wechaty_settings import (
    ENDPOINT_ENV,
    TOKEN_ENV,
    WechatySettings,
    adopt_wechaty_loggers,
)

__all__ = ["ENDPOINT_ENV", "TOKEN_ENV", "WechatySettings", "WechatyTransport"]

log = logging.getLogger("lcbot.wechaty")

RECEIVE = 2  # wechaty-puppet's FriendshipType.Receive: someone asks to be a friend
# A file travels base64 in one gRPC message, and PuppetServer keeps grpc-js's default
# limit of 4 MiB per message: 3 MiB of file, less room for the name and the framing.
MAX_FILE_SIZE = 3 * 1024 * 1024 - 64 * 1024
NO_TLS = "WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_SERVER=true"
LOGIN_GRACE = 2.0  # seconds after the stream is up in which a logged-in service says so


def import_wechaty() -> None:
    """Patch and import python-wechaty (fails early and loudly if it cannot be imported)."""
    from lcbot.transports import wechaty_compat

    wechaty_compat.apply()
    import wechaty  # noqa: F401

    # what constructing a Wechaty imports on first use (its scheduler's SQLite job store)
    for lazy in ("sqlite3", "sqlalchemy.dialects.sqlite", "tzdata.zoneinfo"):
        with contextlib.suppress(ImportError):
            importlib.import_module(lazy)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WechatyTransport(Transport):
    name = "wechaty"
    paced = True  # WeChat throttles senders: the drainer uses WeChat's pace by default
    max_file_size = MAX_FILE_SIZE

    def __init__(self, settings: WechatySettings, data_dir: Path) -> None:
        super().__init__()
        self.settings = settings
        self.identity = settings.identity
        self.data_dir = data_dir
        self.logged_in_as: str | None = None
        self.down_since: float | None = time.monotonic()
        self.reason: str | None = None  # why the last connection attempt failed
        self.attempts = 0  # connection attempts since the start
        self.login = LoginTracker(data_dir)
        self.liveness = Liveness(settings.liveness, self._ding, self._reconnect, self._attached)
        self.owner = Owner(data_dir)
        self._bot: Any = None
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncio.Task[None] | None = None
        self._dropping = False  # the liveness check cancelled the connection
        self._stopping = False
        self._on_message: OnMessage | None = None

    # --- connection ----------------------------------------------------------------------

    async def start(self, on_message: OnMessage) -> None:
        if not self.settings.configured:
            raise ConfigError(f"WeChat transport: set {ENDPOINT_ENV} (and {TOKEN_ENV})")
        cache = self.data_dir / "wechaty"
        cache.mkdir(parents=True, exist_ok=True)
        os.environ["CACHE_DIR"] = str(cache)  # python-wechaty writes job.db there
        await asyncio.to_thread(import_wechaty)  # ~1 s of imports: not on the event loop
        adopt_wechaty_loggers(self.settings.token)
        self._on_message = on_message
        self._task = asyncio.create_task(self._supervise(), name="lcbot-wechaty")
        self._task.add_done_callback(self._supervisor_ended)
        self.liveness.start()

    def _supervisor_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("the WeChat connection supervisor failed: %s: %s", type(exc).__name__, exc)
            self.reason = f"the connection supervisor failed: {type(exc).__name__}"

    def _new_bot(self) -> Any:
        from wechaty import Wechaty, WechatyOptions
        from wechaty_puppet import PuppetOptions

        options = WechatyOptions(
            puppet_options=PuppetOptions(
                end_point=self.settings.endpoint, token=self.settings.token
            ),
            host="127.0.0.1",
            port=self.settings.port or free_port(),
        )
        bot = Wechaty(options)
        adopt_wechaty_loggers(self.settings.token)
        bot.on("login", self._on_login)
        bot.on("logout", self._on_logout)
        bot.on("scan", self._on_scan)
        bot.on("error", self._on_error)
        bot.on("message", self._on_wechat_message)
        bot.on("friendship", self._on_friendship)
        bot.on("room-invite", self._on_room_invite)
        return bot

    async def _supervise(self) -> None:
        delay = 1.0
        endpoint = self.settings.endpoint or "(found by token)"
        while not self._stopping:
            started = time.monotonic()
            self.attempts += 1
            self.login.connecting()
            # after a failure, the next attempts are quiet until the reason changes
            log.log(
                logging.INFO if self.reason is None else logging.DEBUG,
                "connecting to the puppet service at %s",
                endpoint,
            )
            bot = None
            try:
                bot = self._bot = self._new_bot()
                self._connection = asyncio.create_task(self._connect(bot))
                await self._connection
                if not self._stopping:
                    self._failed("the puppet service closed the event stream")
            except asyncio.CancelledError:
                if not self._dropping or self._stopping:
                    raise  # the supervisor itself is cancelled
                # only the connection was cancelled (liveness): reconnect (logged there)
            except Exception as exc:
                if not self._stopping:
                    self._failed(describe_failure(exc, endpoint, self.settings))
            finally:
                self._dropping = False
                self.liveness.disconnected()
                self._mark_down()
                if bot is not None:
                    await self._close(bot)
            if self._stopping:
                return
            if time.monotonic() - started > 60:
                delay = 1.0
            log.debug("reconnecting in %.0f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def _connect(self, bot: Any) -> None:
        await bot.init_puppet()
        await bot.init_puppet_event_bridge(bot.puppet)
        self.liveness.connecting(bot.puppet)
        await bot.puppet.start()  # Start (no Stop), then the event stream until it ends

    def _failed(self, reason: str) -> None:
        """One line when the reason changes; the same failure again is quiet (debug)."""
        level = logging.DEBUG if reason == self.reason else logging.WARNING
        log.log(level, "WeChat: %s; retrying with backoff", reason)
        self.reason = reason
        self.login.connecting(reason)

    def _attached(self) -> None:
        """The event stream is up; if no login follows soon, say what lcbot waits for."""
        self.reason = None
        asyncio.get_running_loop().call_later(LOGIN_GRACE, self._check_login)

    def _check_login(self) -> None:
        if self.ready or self._stopping or self.login.state not in ("connecting", "error"):
            return
        log.warning(
            "connected to the puppet service; WeChat is not logged in: waiting for the "
            "service's login QR code (`lcbot wechat qr` shows it)"
        )
        self.login.logged_out()

    def _reconnect(self, why: str) -> None:
        """Drop the current connection (the supervisor connects again)."""
        log.warning("WeChat: %s; reconnecting", why)
        self.reason = why
        if self._connection is not None and not self._connection.done():
            self._dropping = True
            self._connection.cancel()

    async def _ding(self) -> None:
        bot = self._bot
        if bot is None or getattr(bot, "_puppet", None) is None:
            raise ConnectionError("not connected")
        await bot.puppet.ding("lcbot")

    async def _close(self, bot: Any) -> None:
        """Close the client's channel; the puppet (and its login) is left running."""
        try:
            manager = getattr(bot, "_plugin_manager", None)
            scheduler = getattr(manager, "scheduler", None)
            if scheduler is not None and getattr(scheduler, "running", False):
                scheduler.shutdown(wait=False)
            if getattr(bot, "_puppet", None) is not None:
                await asyncio.wait_for(bot.puppet.stop(), 5)
        except Exception as exc:  # closing a broken connection may fail too
            log.debug("closing the wechaty client: %s", exc)

    def _mark_down(self) -> None:
        if self.ready:
            log.warning("WeChat connection lost; messages wait in the outbox")
        self.set_ready(False)
        self.logged_in_as = None
        if self.down_since is None:
            self.down_since = time.monotonic()

    async def _on_login(self, contact: Any) -> None:
        self.logged_in_as = f"{contact.name} ({contact.contact_id})"
        self.down_since = None
        self.reason = None
        self.login.logged_in(self.logged_in_as)
        if self.settings.self_user:
            self.owner.logged_in(contact.contact_id)
        log.warning("logged in to WeChat as %s", self.logged_in_as)
        self.set_ready(True)

    async def _on_logout(self, contact: Any) -> None:
        log.warning("logged out of WeChat (%s)", getattr(contact, "contact_id", "?"))
        self._mark_down()
        self.login.logged_out()

    async def _on_scan(self, qrcode: str, status: Any, data: Any = None) -> None:
        self.login.scan(int(getattr(status, "value", status)), qrcode or None)

    async def _on_error(self, payload: Any) -> None:
        log.warning("the puppet service reported an error: %s", getattr(payload, "data", payload))

    async def stop(self) -> None:
        self._stopping = True
        self.set_ready(False)
        await self.liveness.stop()
        bot, self._bot = self._bot, None
        if bot is not None:
            await self._close(bot)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- what arrives --------------------------------------------------------------------

    async def _on_wechat_message(self, msg: Any) -> None:
        try:
            message = await incoming(msg, self.settings, self._bot, self.owner)
        except Exception:
            log.exception("could not read a WeChat message")
            return
        if message is not None and self._on_message is not None:
            await self._on_message(message)

    async def _on_friendship(self, friendship: Any) -> None:
        try:
            if int(getattr(friendship.type(), "value", friendship.type())) != RECEIVE:
                return
            contact = friendship.contact()
            await contact.ready()
            who = f"{contact.name} ({contact.contact_id})"
            if self.settings.accept_friends == "never" or self.admit_contact is None:
                log.info("friend request from %s ignored ([wechaty] accept_friends)", who)
                return
            user = await self.admit_contact(contact.contact_id, contact.name, friendship.hello())
            if user is None:
                log.info("friend request from %s ignored: no valid pairing code", who)
                return
            await friendship.accept()
            log.warning("accepted the friend request of %s: user %s", who, user)
        except Exception:
            log.exception("could not handle a friend request")

    async def _on_room_invite(self, invitation: Any) -> None:
        try:
            inviter = await invitation.inviter()
            await inviter.ready()
            topic = await invitation.topic()
            who = f"{inviter.name} ({inviter.contact_id})"
            if self.may_invite is None or not self.may_invite(inviter.contact_id, inviter.name):
                log.info("invitation to group %r by %s ignored: not root or admin", topic, who)
                return
            await invitation.accept()
            log.warning("joined group %r, invited by %s", topic, who)
        except Exception:
            log.exception("could not handle a group invitation")

    # --- what goes out -------------------------------------------------------------------

    async def _target(self, address: Address) -> Any:
        bot = self._bot
        if bot is None or not self.ready:
            raise ConnectionError("not logged in to WeChat")
        if address.kind == "room":
            return bot.Room.load(address.id)
        if address.kind == "name":
            target = await bot.Contact.find(address.id)
            if target is None:
                raise LookupError(f"no WeChat contact named {address.id!r}")
            return target
        return bot.Contact.load(address.id)

    async def send(self, address: Address, text: str) -> None:
        target = await self._target(address)
        if address.kind == "contact" and address.id == FILE_TRANSFER:
            self.owner.remember(text)  # its echo is the owner's own message: not a command
        await self._timed(target.say(text), address)

    async def send_file(self, address: Address, path: Path, name: str) -> None:
        from wechaty import FileBox

        target = await self._target(address)
        data = await asyncio.to_thread(path.read_bytes)
        if len(data) > MAX_FILE_SIZE:  # stored under a larger limit by an earlier run
            raise Undeliverable(f"{name} is {len(data):,} bytes; WeChat takes {MAX_FILE_SIZE:,}")
        await self._timed(target.say(FileBox.from_base64(base64.b64encode(data), name)), address)

    async def _timed(self, sending: Any, address: Address) -> None:
        """Await a send for at most ``send_timeout``; a timeout also probes the puppet."""
        try:
            await asyncio.wait_for(sending, self.settings.send_timeout)
        except asyncio.TimeoutError:
            self.liveness.suspect()
            raise TimeoutError(
                f"WeChat did not confirm the send to {address.label} within "
                f"{self.settings.send_timeout:g} s"
            ) from None

    def status(self) -> dict[str, object]:
        return {
            "logged_in_as": self.logged_in_as,
            "down_since": self.down_since,
            "reason": self.reason,
            "attempts": self.attempts,
            "login": self.login.status(),
            "liveness": self.liveness.status(),
        }


def describe_failure(exc: BaseException, endpoint: str, settings: WechatySettings) -> str:
    """One line saying why connecting failed, and what to do about it (never the token)."""
    name = type(exc).__name__
    status = getattr(getattr(exc, "status", None), "name", "")
    if isinstance(exc, OSError):
        reason = f"cannot reach the puppet service at {endpoint}: {exc.strerror or exc}"
    elif status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        reason = f"the puppet service at {endpoint} refused the token in ${settings.token_env}"
    elif status == "ALREADY_EXISTS":
        reason = (
            f"the puppet service at {endpoint} serves another client's event stream (one at "
            "a time: another lcbot or Wechaty client, or a dropped connection not yet noticed)"
        )
    elif name in ("StreamTerminatedError", "ProtocolError") or "Connection lost" in str(exc):
        reason = (
            f"the puppet service at {endpoint} dropped the connection ({exc or name}); if it "
            f"speaks TLS, start the gateway with {NO_TLS} (`lcbot wechat doctor` checks it)"
        )
    else:
        reason = f"puppet service connection failed: {name}: {exc}"
    token = settings.token
    return reason.replace(token, "***") if token else reason
