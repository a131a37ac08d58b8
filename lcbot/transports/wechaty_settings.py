"""``[wechaty]`` settings of the WeChat transport, and python-wechaty's loggers tamed.

Imported by the CLI (``config check``, ``run``) without importing python-wechaty.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

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
    accept_friends: str = "invited"
    self_user: str | None = None
    liveness: float = 300.0
    send_timeout: float = 30.0

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
            accept_friends=wechaty["accept_friends"],
            self_user=wechaty["self_user"] or None,
            liveness=wechaty["liveness"],
            send_timeout=wechaty["send_timeout"],
        )


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
    it also logs the token when both an endpoint and a token are set. Its warnings repeat
    on every reconnect and say less than lcbot's own lines, so only its errors pass (all of
    it at ``--log-level debug``).
    """
    level = logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.ERROR
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
