"""The WeChat transport, on python-wechaty (PyPI ``wechaty==0.10.7``) and a puppet service.

Imported only when this transport starts. Connection: ``WECHATY_PUPPET_SERVICE_ENDPOINT``
(or ``[wechaty] endpoint``) and the token from ``WECHATY_PUPPET_SERVICE_TOKEN`` (or the
variable named by ``[wechaty] token_env``); the token is never stored nor logged.

Life of a connection: a supervisor creates a fresh ``Wechaty`` per attempt (an instance
cannot be restarted once stopped), runs the puppet's event stream, and when the stream
ends or fails reconnects with backoff (1 s … 60 s) instead of python-wechaty's fixed
60 s sleep. The drainer sends only while logged in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcbot.errors import ConfigError
from lcbot.transports.base import Address, Incoming, OnMessage, Transport

log = logging.getLogger("lcbot.wechaty")

ENDPOINT_ENV = "WECHATY_PUPPET_SERVICE_ENDPOINT"
TOKEN_ENV = "WECHATY_PUPPET_SERVICE_TOKEN"


@dataclass(frozen=True)
class WechatySettings:
    """``[wechaty]`` and ``[security]`` of lcbot.toml, plus the environment."""

    endpoint: str | None = None
    token_env: str = TOKEN_ENV
    port: int = 0  # python-wechaty's own web port; 0 = a free one
    rooms: str = "off"
    room_replies: str = "room"
    identity: str = "id"

    @property
    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None

    @property
    def configured(self) -> bool:
        return bool(self.endpoint or self.token)

    @classmethod
    def from_settings(cls, wechaty: dict[str, Any], security: dict[str, Any]) -> WechatySettings:
        """From the checked ``[wechaty]`` and ``[security]`` values (``Config.settings``);
        ``$WECHATY_PUPPET_SERVICE_ENDPOINT`` wins over ``[wechaty] endpoint``."""
        return cls(
            endpoint=os.environ.get(ENDPOINT_ENV) or wechaty["endpoint"] or None,
            token_env=wechaty["token_env"],
            port=wechaty["port"],
            rooms=wechaty["rooms"],
            room_replies=wechaty["room_replies"],
            identity=security["identity"],
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WechatyTransport(Transport):
    name = "wechaty"
    paced = True  # WeChat throttles senders: the drainer uses WeChat's pace by default

    def __init__(self, settings: WechatySettings, data_dir: Path) -> None:
        super().__init__()
        self.settings = settings
        self.identity = settings.identity
        self.data_dir = data_dir
        self.logged_in_as: str | None = None
        self.down_since: float | None = time.monotonic()
        self._bot: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._on_message: OnMessage | None = None

    # --- connection ----------------------------------------------------------------------

    async def start(self, on_message: OnMessage) -> None:
        if not self.settings.configured:
            raise ConfigError(f"WeChat transport: set {ENDPOINT_ENV} (and {TOKEN_ENV})")
        cache = self.data_dir / "wechaty"
        cache.mkdir(parents=True, exist_ok=True)
        os.environ["CACHE_DIR"] = str(cache)  # python-wechaty writes job.db there
        from lcbot.transports import wechaty_compat

        wechaty_compat.apply()
        import wechaty  # noqa: F401  (fail early and loudly if it cannot be imported)

        adopt_wechaty_loggers(self.settings.token)

        self._on_message = on_message
        self._task = asyncio.create_task(self._supervise(), name="lcbot-wechaty")

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
        bot.on("message", self._on_wechat_message)
        return bot

    async def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping:
            bot = self._bot = self._new_bot()
            started = time.monotonic()
            try:
                log.info("connecting to the puppet service at %s", self.settings.endpoint or "?")
                await bot.init_puppet()
                await bot.init_puppet_event_bridge(bot.puppet)
                await bot.puppet.start()  # returns when the event stream ends
                if not self._stopping:
                    log.warning("the puppet service closed the event stream")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._stopping:
                    log.warning("puppet service connection failed: %s: %s", type(exc).__name__, exc)
            finally:
                self._mark_down()
                await self._close(bot)
            if self._stopping:
                return
            if time.monotonic() - started > 60:
                delay = 1.0
            log.info("reconnecting in %.0f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def _close(self, bot: Any) -> None:
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
        log.warning("logged in to WeChat as %s", self.logged_in_as)
        self.set_ready(True)

    async def _on_logout(self, contact: Any) -> None:
        log.warning("logged out of WeChat (%s)", getattr(contact, "contact_id", "?"))
        self._mark_down()

    async def stop(self) -> None:
        self._stopping = True
        self.set_ready(False)
        bot, self._bot = self._bot, None
        if bot is not None:
            await self._close(bot)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- messages ------------------------------------------------------------------------

    async def _on_wechat_message(self, msg: Any) -> None:
        try:
            incoming = await self._incoming(msg)
        except Exception:
            log.exception("could not read a WeChat message")
            return
        if incoming is not None and self._on_message is not None:
            await self._on_message(incoming)

    async def _incoming(self, msg: Any) -> Incoming | None:
        if msg.is_self():  # the bot receives its own messages
            return None
        text = msg.text()
        if not isinstance(text, str) or not text.strip():
            return None
        talker = msg.talker()
        room = msg.room()
        if room is None:
            return Incoming(talker.contact_id, talker.name, text)
        if self.settings.rooms == "off" or not await msg.mention_self():
            return None
        text = await self._strip_mention(msg, text)
        reply_to = f"room:{room.room_id}" if self.settings.room_replies == "room" else None
        return Incoming(talker.contact_id, talker.name, text, room.room_id, reply_to)

    async def _strip_mention(self, msg: Any, text: str) -> str:
        try:
            stripped = await msg.mention_text()
        except Exception:
            stripped = text
        if stripped == text and self._bot is not None:  # fall back to removing "@<bot name>"
            me = self._bot.user_self().name
            stripped = re.sub(rf"@{re.escape(me)}[\u2005\u0020]?", "", text)
        return stripped.strip()

    async def send(self, address: Address, text: str) -> None:
        bot = self._bot
        if bot is None or not self.ready:
            raise ConnectionError("not logged in to WeChat")
        if address.kind == "room":
            target = bot.Room.load(address.id)
        elif address.kind == "name":
            target = await bot.Contact.find(address.id)
            if target is None:
                raise LookupError(f"no WeChat contact named {address.id!r}")
        else:
            target = bot.Contact.load(address.id)
        await target.say(text)

    def status(self) -> dict[str, object]:
        return {"logged_in_as": self.logged_in_as, "down_since": self.down_since}


class Redact(logging.Filter):
    """Replaces a secret (the puppet token) in every log record passing through."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), None
        return True


def adopt_wechaty_loggers(token: str | None) -> None:
    """Route python-wechaty's loggers through lcbot's logging, quieter, token redacted.

    python-wechaty gives each logger its own stderr handler at INFO and stops propagation;
    it also logs the token when both an endpoint and a token are set.
    """
    level = logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and not logger.propagate and logger.handlers:
            logger.handlers = []
            logger.propagate = True
            logger.setLevel(level)
            if token:
                logger.addFilter(Redact(token))
    if token:
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, Redact) and f.secret == token for f in handler.filters):
                handler.addFilter(Redact(token))
