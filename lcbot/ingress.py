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

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lcbot.alerts import MAX_TEXT, MAX_TITLE, Alert, InvalidAlert, make_alert
from lcbot.db import Busy
from lcbot.errors import ConfigError, LcbotError

log = logging.getLogger("lcbot.ingress")

MAX_BODY = 1024 * 1024
ALERT_FIELDS = {"text": str, "level": str, "title": str, "key": str, "resolved": bool}


@dataclass(frozen=True)
class IngressSettings:
    """``[ingress]`` and ``[ingress.severity]``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8789
    token_env: str = "LCBOT_INGRESS_TOKEN"
    severity: tuple[tuple[str, str], ...] = ()

    @property
    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None

    @classmethod
    def from_settings(cls, values: dict[str, Any]) -> IngressSettings:
        """From the checked ``[ingress]`` values of ``Config.settings``."""
        host, port = values["listen"]
        return cls(
            values["enabled"], host, port, values["token_env"], tuple(values["severity"].items())
        )

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


def _checked(where: str, **fields: Any) -> Alert:
    """``make_alert`` with its error turned into a 400 naming the field."""
    try:
        return make_alert(**fields)
    except InvalidAlert as exc:
        raise BadRequest(f"field '{where}{exc.field}': {exc}") from None


def parse_alert(body: Any) -> Alert:
    """Validate a ``POST /alert`` body → an ``Alert`` (source ``http``)."""
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
    return _checked(
        "",
        text=text,
        level=body.get("level", "info"),
        title=body.get("title"),
        key=body.get("key"),
        resolved=bool(body.get("resolved")),
        source="http",
    )


def _short_key(key: str) -> str:
    """Alertmanager keys from many labels can be long: keep them within ``MAX_TITLE``."""
    if len(key) <= MAX_TITLE:
        return key
    return key[: MAX_TITLE - 17] + "#" + hashlib.sha256(key.encode()).hexdigest()[:16]


def parse_alertmanager(body: Any, severity: dict[str, str]) -> list[Alert]:
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
        alerts.append(
            _checked(
                f"{where}.",
                text=text[:MAX_TEXT],
                level=level,
                title=name[:MAX_TITLE],
                key=_short_key(key),
                resolved=status == "resolved",
                source="alertmanager",
            )
        )
    return alerts


class Ingress:
    """The HTTP listener, on the bot's event loop. ``store`` keeps a request's alerts in
    one transaction (blocking: it runs in a worker thread); ``health`` answers /healthz."""

    def __init__(
        self,
        settings: IngressSettings,
        store: Callable[[list[Alert]], list[int]],
        health: Callable[[], dict[str, Any]],
    ) -> None:
        self.settings = settings
        self.store = store
        self.health = health
        self.severity = dict(settings.severity)
        self.port: int | None = None
        self._sock: socket.socket | None = None

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        """Take the listening address now (fail fast: before the transport connects)."""
        host, port = self.settings.host, self.settings.port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise LcbotError(
                f"ingress cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise LcbotError(
                f"ingress cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]  # the real one when port = 0
        try:
            yield
        finally:
            sock.close()
            self._sock = None

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Answer requests on the bound socket until the block ends."""
        from aiohttp import web

        assert self._sock is not None, "bound() first"
        application = web.Application(client_max_size=MAX_BODY, middlewares=[self._auth])
        application.add_routes(
            [
                web.post("/alert", self._alert),
                web.post("/alertmanager", self._alertmanager),
                web.get("/healthz", self._healthz),
            ]
        )
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        try:
            await web.SockSite(runner, self._sock).start()
            auth = "Bearer token required" if self.settings.token else "no token (loopback only)"
            log.warning(
                "ingress listening on http://%s:%d (%s)", self.settings.host, self.port, auth
            )
            yield
        finally:
            await runner.cleanup()

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
        try:
            ids = await asyncio.to_thread(self.store, alerts)
        except (Busy, sqlite3.OperationalError) as exc:  # locked by another process too long
            log.warning("could not store alerts from %s: %s", request.remote, exc)
            return self._json_error(503, "the database is busy; retry")
        return web.json_response({"ids": ids}, status=202)

    async def _alert(self, request):
        return await self._accept(request, lambda body: [parse_alert(body)])

    async def _alertmanager(self, request):
        return await self._accept(request, lambda body: parse_alertmanager(body, self.severity))

    async def _healthz(self, request):
        from aiohttp import web

        return web.json_response(self.health())

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
