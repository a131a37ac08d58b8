"""HTTP alert ingress: programs and Prometheus Alertmanager page users through lcbot.

``[ingress] enabled = true`` starts an aiohttp server on the bot's event loop:

* ``POST /alert``: ``{"text", "level", "title", "key", "resolved"}`` → one alert.
* ``POST /alertmanager``: Alertmanager's webhook payload (version 4) → one alert per entry.
* ``GET /healthz``: transport state, outbox depth by state, time of the last send.

Every request needs ``Authorization: Bearer <token>`` when the token variable
(``[ingress] token_env``, default ``LCBOT_INGRESS_TOKEN``) is set; it is compared in
constant time and a failure answers 401 and nothing else. Without a token the listener
may only bind a loopback address. Bad input answers 400 naming the field (413 over
1 MiB) and queues nothing: alerts of one request are stored in one transaction.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lcbot.alerts import LEVELS
from lcbot.errors import ConfigError, LcbotError

if TYPE_CHECKING:  # pragma: no cover
    from lcbot.app import App

log = logging.getLogger("lcbot.ingress")

MAX_BODY = 1024 * 1024
MAX_TEXT = 4000  # characters of one alert: a chat alert is not a log file
DEFAULT_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
ALERT_FIELDS = {"text": str, "level": str, "title": str, "key": str, "resolved": bool}


@dataclass(frozen=True)
class IngressSettings:
    """``[ingress]`` and ``[ingress.severity]``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8789
    token_env: str = "LCBOT_INGRESS_TOKEN"
    severity: tuple[tuple[str, str], ...] = tuple(DEFAULT_SEVERITY.items())

    @property
    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None

    @classmethod
    def from_config(cls, section: dict[str, Any], where: str) -> IngressSettings:
        enabled = section.get("enabled", False)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}: ingress.enabled: expected true or false")
        listen = section.get("listen", "127.0.0.1:8789")
        host, _, port_text = listen.rpartition(":") if isinstance(listen, str) else ("", "", "")
        if not host or not re.fullmatch(r"[0-9]{1,5}", port_text) or int(port_text) > 65535:
            raise ConfigError(f"{where}: ingress.listen: expected HOST:PORT, got {listen!r}")
        token_env = section.get("token_env", "LCBOT_INGRESS_TOKEN")
        if not isinstance(token_env, str) or not token_env:
            raise ConfigError(f"{where}: ingress.token_env: expected a variable name")
        if "token" in section:
            raise ConfigError(f"{where}: [ingress] token: put the token in ${token_env} instead")
        mapping = dict(DEFAULT_SEVERITY)
        custom = section.get("severity", {})
        if not isinstance(custom, dict):
            raise ConfigError(f"{where}: [ingress.severity] must be a table")
        for label, level in custom.items():
            if level not in LEVELS:
                raise ConfigError(
                    f"{where}: ingress.severity.{label}: expected one of {', '.join(LEVELS)}"
                )
            mapping[label] = level
        return cls(enabled, host.strip("[]"), int(port_text), token_env, tuple(mapping.items()))

    def check_exposure(self, where: str) -> None:
        """Refuse a listener reachable from the network without a token."""
        if self.token:
            return
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        if not loopback:
            raise ConfigError(
                f"{where}: ingress.listen = {self.host}:{self.port} is reachable from the "
                f"network: set a token in ${self.token_env} (or listen on 127.0.0.1)"
            )


class BadRequest(Exception):
    """Answered with 400 and this message."""


def _check_unicode(value: Any, field: str) -> None:
    """Texts must be storable: no lone surrogates (JSON allows them, UTF-8 does not)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"field '{field}' is not valid Unicode") from None


def parse_alert(body: Any) -> tuple:
    """Validate a ``POST /alert`` body → ``(text, level, title, key, resolved, source)``."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    for name in body:
        if name not in ALERT_FIELDS:
            raise BadRequest(f"unknown field '{name}'")
    for name, kind in ALERT_FIELDS.items():
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            raise BadRequest(f"field '{name}' must be a {kind.__name__}")
    for name in ("text", "title", "key"):
        _check_unicode(body.get(name), name)
    text = body.get("text")
    if not text or not text.strip():
        raise BadRequest("field 'text' is required")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"field 'text' is longer than {MAX_TEXT} characters")
    level = body.get("level", "info")
    if level not in LEVELS:
        raise BadRequest(f"field 'level' must be one of {', '.join(LEVELS)}")
    return (text, level, body.get("title"), body.get("key"), bool(body.get("resolved")), "http")


def parse_alertmanager(body: Any, severity: dict[str, str]) -> list[tuple]:
    """Alertmanager webhook (version 4) → alerts; every entry is checked before any is kept."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    entries = body.get("alerts")
    if not isinstance(entries, list) or not entries:
        raise BadRequest("field 'alerts' must be a non-empty list")
    alerts = []
    for i, entry in enumerate(entries):
        where = f"alerts[{i}]"
        if not isinstance(entry, dict):
            raise BadRequest(f"field '{where}' must be an object")
        status = entry.get("status")
        if status not in ("firing", "resolved"):
            raise BadRequest(f"field '{where}.status' must be firing or resolved")
        labels = entry.get("labels")
        annotations = entry.get("annotations", {}) or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise BadRequest(f"field '{where}.labels' must be an object of texts")
        for label, value in labels.items():
            _check_unicode(label, f"{where}.labels")
            _check_unicode(value, f"{where}.labels.{label}")
        if not isinstance(annotations, dict):
            raise BadRequest(f"field '{where}.annotations' must be an object")
        fingerprint = entry.get("fingerprint")
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise BadRequest(f"field '{where}.fingerprint' must be a text")
        _check_unicode(fingerprint, f"{where}.fingerprint")
        name = labels.get("alertname", "alert")
        key = fingerprint or name + "".join(
            f",{k}={v}" for k, v in sorted(labels.items()) if k != "alertname"
        )
        level = severity.get(labels.get("severity", ""), "warning")
        summary = annotations.get("summary") or annotations.get("description") or ""
        where_labels = ", ".join(
            f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
        )
        _check_unicode(str(summary), f"{where}.annotations")
        text = " — ".join(part for part in (str(summary).strip(), where_labels) if part) or name
        text = text[:MAX_TEXT]
        alerts.append((text, level, name, key, status == "resolved", "alertmanager"))
    return alerts


class Ingress:
    """The HTTP listener, running on the App's event loop."""

    def __init__(self, app: App, settings: IngressSettings) -> None:
        self.app = app
        self.settings = settings
        self.severity = dict(settings.severity)
        self.runner: Any = None
        self.port: int | None = None

    async def start(self) -> None:
        from aiohttp import web

        application = web.Application(client_max_size=MAX_BODY, middlewares=[self._auth])
        application.add_routes(
            [
                web.post("/alert", self._alert),
                web.post("/alertmanager", self._alertmanager),
                web.get("/healthz", self._healthz),
            ]
        )
        self.runner = web.AppRunner(application, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            raise LcbotError(
                f"ingress cannot listen on {self.settings.host}:{self.settings.port}: "
                f"{exc.strerror or exc}"
            ) from None
        self.port = site._server.sockets[0].getsockname()[1]  # the real one when port = 0
        auth = "Bearer token required" if self.settings.token else "no token (loopback only)"
        log.warning("ingress listening on http://%s:%d (%s)", self.settings.host, self.port, auth)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # --- handlers ------------------------------------------------------------------------

    @staticmethod
    def _json_error(status: int, message: str):
        from aiohttp import web

        return web.json_response({"error": message}, status=status)

    async def _read_json(self, request) -> Any:
        raw = await request.read()  # over MAX_BODY: HTTPRequestEntityTooLarge → 413
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"malformed JSON: {exc}") from None
        except RecursionError:
            raise BadRequest("malformed JSON: nested too deeply") from None

    async def _accept(self, request, parse) -> Any:
        from aiohttp import web

        try:
            alerts = parse(await self._read_json(request))
        except BadRequest as exc:
            return self._json_error(400, str(exc))
        ids = self.app.alerts.raise_many(alerts)
        return web.json_response({"ids": ids}, status=202)

    async def _alert(self, request):
        return await self._accept(request, lambda body: [parse_alert(body)])

    async def _alertmanager(self, request):
        return await self._accept(request, lambda body: parse_alertmanager(body, self.severity))

    async def _healthz(self, request):
        from aiohttp import web

        transport = self.app.transport
        db = self.app.outbox.db
        counts = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
        (last_sent,) = db.execute("SELECT max(sent_at) FROM outbox").fetchone()
        down_since = getattr(transport, "down_since", None)
        return web.json_response(
            {
                "transport": {
                    "name": transport.name,
                    "ready": transport.ready,
                    "logged_in_as": getattr(transport, "logged_in_as", None),
                    "down_for_seconds": None
                    if transport.ready or down_since is None
                    else round(time.monotonic() - down_since, 1),
                },
                "outbox": {state: counts.get(state, 0) for state in ("pending", "sent", "dead")},
                "last_sent": last_sent,
            }
        )

    @property
    def _auth(self):
        from aiohttp import web

        token = self.settings.token

        @web.middleware
        async def auth(request, handler):
            if token:
                given = request.headers.get("Authorization", "")
                expected = f"Bearer {token}"
                raw = given.encode("utf-8", "surrogateescape")  # odd bytes must not crash
                if not hmac.compare_digest(raw, expected.encode("utf-8", "surrogateescape")):
                    return web.Response(status=401)
            try:
                return await handler(request)
            except web.HTTPRequestEntityTooLarge:
                return self._json_error(413, f"body larger than {MAX_BODY} bytes")

        return auth
