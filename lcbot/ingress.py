"""HTTP alert ingress: programs and Prometheus Alertmanager page users through lcbot.

``[ingress] enabled = true`` starts an aiohttp server on the bot's event loop:

* ``POST /alert``: ``{"text", "level", "title", "key", "resolved"}`` → one alert.
* ``POST /alertmanager``: Alertmanager's webhook payload (version 4) → one alert per entry.
* ``POST /heartbeat/KEY``: a heartbeat's beat; ``every`` (required), ``grace``, ``level``
  in the query string or a JSON object body → 200 with when it is due next.
* ``GET /healthz``: transport state, outbox depth by state, time of the last send.
* ``POST /jobs/exchange``: remote jobs (``lcbot.jobhttp``), with the job token only.

Every request needs ``Authorization: Bearer <token>`` when the token variable
(``[ingress] token_env``, default ``LCBOT_INGRESS_TOKEN``) is set; it is compared in
constant time and a failure answers 401 and nothing else. Without a token the listener
may only bind a loopback address. ``/jobs/exchange`` takes the job token instead
(``[ingress] job_token_env``, default ``LCBOT_JOB_TOKEN``; neither token opens the other's
routes); without one remote jobs are off and it answers 403 saying so. Bad input answers
400 naming the field (413 over 1 MiB) and queues nothing: alerts of one request are
stored together (one savepoint). An Alertmanager entry never fails its batch (only a body
that is not a webhook gets 400); a 500 means an internal error, logged.
``lcbot.ingress_guard`` limits the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import importlib
import ipaddress
import json
import logging
import os
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lcbot.alerts import Alert
from lcbot.db import Busy
from lcbot.errors import ConfigError
from lcbot.ingress_guard import ConnectionGuard, ServerLog, listen
from lcbot.webhooks import BadRequest, parse_alert, parse_alertmanager, parse_heartbeat

if TYPE_CHECKING:
    from lcbot.jobhttp import JobExchange

log = logging.getLogger("lcbot.ingress")

MAX_BODY = 1024 * 1024
BODY_TIMEOUT = 30.0  # seconds for a request's body, once its head has come
KEEPALIVE = 75.0  # seconds an idle keep-alive connection stays open (aiohttp's is an hour)
BACKLOG = 128
JOBS_PATH = "/jobs/exchange"


@dataclass(frozen=True)
class IngressSettings:
    """``[ingress]`` and ``[ingress.severity]``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8789
    token_env: str = "LCBOT_INGRESS_TOKEN"
    severity: tuple[tuple[str, str], ...] = ()
    job_token_env: str = "LCBOT_JOB_TOKEN"

    @property
    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None

    @property
    def job_token(self) -> str | None:
        """The remote jobs' token (None: remote jobs are off)."""
        return os.environ.get(self.job_token_env) or None

    @classmethod
    def from_settings(cls, values: dict[str, Any]) -> IngressSettings:
        """From the checked ``[ingress]`` values of ``Config.settings``."""
        host, port = values["listen"]
        severity = tuple(values["severity"].items())
        return cls(
            values["enabled"], host, port, values["token_env"], severity, values["job_token_env"]
        )

    def check_exposure(self, where: str) -> None:
        """Refuse a listener reachable from the network without a token, and one job token
        that is also the alert token (each must open only its own routes)."""
        if self.job_token and self.job_token == self.token:
            raise ConfigError(
                f"{where}: ${self.job_token_env} and ${self.token_env} hold the same token: "
                "give remote jobs a token of their own"
            )
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


class Ingress:
    """The HTTP listener, on the bot's event loop. ``store`` keeps a request's alerts
    together (awaited: ``lcbot.alert_store``, None when the database stayed locked) and
    ``beat`` stores a heartbeat's beat, returning when it is due next (blocking: in a worker
    thread); ``health`` answers /healthz. Its connections are limited by an
    ``ingress_guard.ConnectionGuard``."""

    def __init__(
        self,
        settings: IngressSettings,
        store: Callable[[list[Alert]], Awaitable[list[int] | None]],
        health: Callable[[], dict[str, Any]],
        beat: Callable[[str, float, float, str, str], float],
        jobs: JobExchange | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.health = health
        self.beat = beat
        self.jobs = jobs  # remote jobs' sessions (POST /jobs/exchange)
        self.severity = dict(settings.severity)
        self.port: int | None = None
        self.guard = ConnectionGuard()
        self._sock: socket.socket | None = None

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return len(self.guard.open)

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        """Take the listening address now (fail fast: before the transport connects)."""
        sock = listen(self.settings.host, self.settings.port, BACKLOG)
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
        await asyncio.to_thread(importlib.import_module, "aiohttp.web")  # not on the loop
        from aiohttp import web

        assert self._sock is not None, "bound() first"
        application = web.Application(
            client_max_size=MAX_BODY, middlewares=[self.guard.middleware, self._auth]
        )
        application.add_routes(
            [
                web.post("/alert", self._alert),
                web.post("/alertmanager", self._alertmanager),
                web.post("/heartbeat/{key}", self._heartbeat),
                web.get("/healthz", self._healthz),
                web.post(JOBS_PATH, self._jobs),
            ]
        )
        runner = web.AppRunner(
            application, access_log=None, keepalive_timeout=KEEPALIVE, logger=ServerLog()
        )
        await runner.setup()
        loop = asyncio.get_running_loop()
        try:
            with self.guard.watching(loop, self._sock):
                factory = self.guard.factory(runner.server)  # type: ignore[arg-type]
                server = await loop.create_server(factory, sock=self._sock, backlog=BACKLOG)
                auth = (
                    "Bearer token required" if self.settings.token else "no token (loopback only)"
                )
                log.warning(
                    "ingress listening on http://%s:%d (%s)", self.settings.host, self.port, auth
                )
                try:
                    yield
                finally:
                    server.close()  # no new connections; the open ones close below
                    if self.jobs is not None:
                        self.jobs.close()  # long polls answer now, not in 25 s
        finally:
            await runner.cleanup()

    # --- handlers ------------------------------------------------------------------------

    @staticmethod
    def _json_error(status: int, message: str):
        from aiohttp import web

        return web.json_response({"error": message}, status=status)

    async def _read_json(self, request, empty: Any = ...) -> Any:
        """The body as JSON (``empty``, when given, for an empty body); ``BadRequest``."""
        from aiohttp import web

        try:  # over MAX_BODY: HTTPRequestEntityTooLarge → 413
            if request.content.is_eof():  # all there (the usual small body): no timer task
                raw = await request.read()
            else:
                raw = await asyncio.wait_for(request.read(), BODY_TIMEOUT)
        except asyncio.TimeoutError:
            raise BadRequest(f"the body did not arrive within {BODY_TIMEOUT:.0f} s") from None
        except web.RequestPayloadError as exc:  # bad chunking, undecodable Content-Encoding
            cause = exc.__cause__ or exc
            raise BadRequest(f"malformed body: {getattr(cause, 'message', cause)}") from None
        except ConnectionError:
            raise BadRequest("the connection was lost before the body arrived") from None
        if not raw.strip() and empty is not ...:
            return empty
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"malformed JSON: {exc}") from None
        except RecursionError:
            raise BadRequest("malformed JSON: nested too deeply") from None

    def _refuse(self, request, exc: BadRequest):
        reply = self._json_error(400, str(exc))
        if not request.content.is_eof():  # the rest of the body is lost: so is the connection
            reply.force_close()
        return reply

    async def _stored(self, request, store: Callable[..., Any], *args: Any) -> Any:
        """``store(*args)`` in a worker thread; None when the database stayed locked."""
        try:
            return await asyncio.to_thread(store, *args)
        except (Busy, sqlite3.OperationalError) as exc:  # locked by another process too long
            log.warning("could not store what %s sent: %s", request.remote, exc)
            return None

    async def _accept(self, request, parse) -> Any:
        from aiohttp import web

        try:
            alerts = parse(await self._read_json(request))
        except BadRequest as exc:
            return self._refuse(request, exc)
        ids = await self.store(alerts)
        if ids is None:
            log.warning("could not store what %s sent: the database is locked", request.remote)
            return self._json_error(503, "the database is busy; retry")
        return web.json_response({"ids": ids}, status=202)

    async def _heartbeat(self, request):
        from aiohttp import web

        try:
            body = await self._read_json(request, empty=None)
            key, every, grace, level = parse_heartbeat(
                request.match_info["key"], request.query, body
            )
        except BadRequest as exc:
            return self._refuse(request, exc)
        due = await self._stored(request, self.beat, key, every, grace, level, "http")
        if due is None:
            return self._json_error(503, "the database is busy; retry")
        answer = {"key": key, "every": every, "grace": grace, "level": level, "due": due}
        return web.json_response(answer)

    async def _alert(self, request):
        return await self._accept(request, lambda body: [parse_alert(body)])

    async def _alertmanager(self, request):
        return await self._accept(request, lambda body: parse_alertmanager(body, self.severity))

    async def _jobs(self, request):
        from aiohttp import web

        assert self.jobs is not None  # the middleware answered 403 otherwise
        try:
            body = await self._read_json(request)
            gone = functools.partial(self.guard.gone, request.protocol)  # a job killed
            answer = await self.jobs.exchange(body, self.settings.job_token or "", gone)
        except BadRequest as exc:
            reply = self._json_error(400, str(exc))
            if not request.content.is_eof():
                reply.force_close()
            return reply
        return web.json_response(answer)

    async def _healthz(self, request):
        from aiohttp import web

        return web.json_response(self.health())

    @property
    def _auth(self):
        """Checks the token (a refused client is also disconnected), answers 413 over
        ``MAX_BODY``, and turns an unexpected error into a logged 500."""
        from aiohttp import web

        alert_token = self.settings.token
        job_token = self.settings.job_token if self.jobs is not None else None

        @web.middleware
        async def auth(request, handler):
            jobs = request.path == JOBS_PATH
            token = job_token if jobs else alert_token
            if jobs and not token:
                return self._json_error(403, f"remote jobs are off: {self._jobs_off()}")
            if token:
                given = request.headers.get("Authorization", "")
                expected = f"Bearer {token}"
                raw = given.encode("utf-8", "surrogateescape")  # odd bytes must not crash
                if not hmac.compare_digest(raw, expected.encode("utf-8", "surrogateescape")):
                    refused = web.Response(status=401)
                    refused.force_close()
                    return refused
            try:
                return await handler(request)
            except web.HTTPRequestEntityTooLarge:
                return self._json_error(413, f"body larger than {MAX_BODY} bytes")
            except web.HTTPException:  # 404, 405: aiohttp answers them
                raise
            except Exception:
                log.exception(
                    "ingress: internal error answering %s %r", request.method, request.path
                )
                return self._json_error(500, "internal error (see the bot's log)")

        return auth

    def _jobs_off(self) -> str:
        return f"the bot was started without ${self.settings.job_token_env}"
