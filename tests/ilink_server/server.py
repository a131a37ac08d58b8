"""ILinkServer: the fake iLink service on 127.0.0.1 in a background thread, and its controls.

Every control method runs on the server's own event loop (so the state needs no lock) and
returns at once; only :meth:`ILinkServer.wait_qrcode` blocks. From async test code that runs
the client on its own loop, use ``await srv.wait_qrcode_async()`` (a blocking wait there
would stall the client that is meant to fetch the code).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from tests.ilink_server import media
from tests.ilink_server.app import Service
from tests.ilink_server.state import State, user_id_of

T = TypeVar("T")


class ILinkServer:
    """A local iLink (WeChat ClawBot) service that is as strict as the real one."""

    def __init__(
        self,
        window: float = 86400.0,
        max_replies: int = 10,
        longpoll: float = 35.0,
        qr_lifetime: float = 120.0,
        port: int = 0,
    ) -> None:
        self._state = State(window, max_replies, longpoll, qr_lifetime)
        self._port = port
        self._service: Service | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.ports: list[int] = []

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> ILinkServer:
        if self._thread is not None:
            raise RuntimeError("ILinkServer already started")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="ilink-server", daemon=True
        )
        self._thread.start()
        ready.result(timeout=10)
        return self

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._listen())
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        self._loop.run_forever()
        self._loop.run_until_complete(self._close())
        self._loop.close()

    async def _listen(self) -> None:
        self._service = Service(self._state)
        self._runner = web.AppRunner(
            self._service.app(), handler_cancellation=True, shutdown_timeout=0.1
        )
        await self._runner.setup()
        for port in (self._port, 0):  # the main listener and the redirect target
            site = web.TCPSite(self._runner, "127.0.0.1", port)
            await site.start()
            server = site._server
            assert server is not None
            self.ports.append(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        self._service.ports = self.ports

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> ILinkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    @property
    def redirect_url(self) -> str:
        """The second listener (same state) that ``scaned_but_redirect`` points to."""
        return f"http://127.0.0.1:{self.ports[1]}"

    @property
    def cdn_base_url(self) -> str:
        return f"{self.base_url}/c2c"

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the server's loop and return its result (a deep copy).
        After :meth:`stop` the records (sent, requests...) can still be read."""
        if self._loop is None:
            raise RuntimeError("ILinkServer was never started")
        if self._thread is None or threading.current_thread() is self._thread:
            return copy.deepcopy(fn(*args))
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(copy.deepcopy(fn(*args)))
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(timeout=10)

    # --- QR flow ---------------------------------------------------------------------------
    def qrcodes(self) -> list[str]:
        """Codes issued, oldest first."""
        return self._call(lambda: list(self._state.qrs))

    def _fresh_code(self) -> str | None:
        fresh = [
            qr.code
            for qr in self._state.qrs.values()
            if qr.wechat_user is None
            and not qr.expired
            and not qr.blocked
            and (self._state.qr_expires_in(qr) or 0) > 0
        ]
        return fresh[-1] if fresh else None

    def wait_qrcode(self, timeout: float = 10) -> str:
        """Block until a code that nobody scanned yet is issued; the newest such code."""
        deadline = time.monotonic() + timeout
        while (code := self._call(self._fresh_code)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no new QR code within {timeout}s")
            time.sleep(0.02)
        return code

    async def wait_qrcode_async(self, timeout: float = 10) -> str:
        return await asyncio.to_thread(self.wait_qrcode, timeout)

    def scan(self, qrcode: str, wechat_user: str = "wx-alice") -> None:
        self._call(self._state.scan, qrcode, wechat_user)

    def require_verify_code(self, qrcode: str, code: str = "4321") -> None:
        self._call(self._state.require_verify_code, qrcode, code)

    def redirect(self, qrcode: str) -> None:
        self._call(self._state.redirect, qrcode)

    def confirm(self, qrcode: str) -> dict[str, Any]:
        """The user confirms on the phone: ``{bot_token, ilink_bot_id, baseurl, ilink_user_id,
        wechat_user}``. A scan that needs a verify code reports ``confirmed`` only once the
        right code came in; a redirected scan only on the redirect listener."""
        return self._call(self._state.confirm, qrcode, self.base_url)

    def expire(self, qrcode: str) -> None:
        self._call(self._state.expire, qrcode)

    # --- chat ------------------------------------------------------------------------------
    @staticmethod
    def user_id(wechat_user: str) -> str:
        """The ``ilink_user_id`` a WeChat user has (what ``confirmed`` reports)."""
        return user_id_of(wechat_user)

    def user_send(
        self, wechat_user: str, text: str | None = None, items: list[dict] | None = None
    ) -> dict[str, Any]:
        return self._call(self._state.user_send, wechat_user, text, items)

    def sent(self, wechat_user: str | None = None) -> list[dict[str, Any]]:
        return self._call(self._state.outcomes, "sent", wechat_user)

    def invisible(self, wechat_user: str | None = None) -> list[dict[str, Any]]:
        return self._call(self._state.outcomes, "invisible", wechat_user)

    def rejected(self, wechat_user: str | None = None) -> list[dict[str, Any]]:
        return self._call(self._state.outcomes, "rejected", wechat_user)

    def wait_sent(
        self, count: int = 1, wechat_user: str | None = None, timeout: float = 10
    ) -> list[dict[str, Any]]:
        """Block until at least ``count`` visible sends (to ``wechat_user``) exist."""
        deadline = time.monotonic() + timeout
        while len(found := self.sent(wechat_user)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} sends within {timeout}s")
            time.sleep(0.02)
        return found

    async def wait_sent_async(
        self, count: int = 1, wechat_user: str | None = None, timeout: float = 10
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.wait_sent, count, wechat_user, timeout)

    def rate_limit(self, wechat_user: str, seconds: float) -> None:
        self._call(self._state.rate_limit, wechat_user, seconds)

    def expire_session(self, wechat_user: str) -> None:
        self._call(self._state.expire_session, wechat_user)

    def advance(self, seconds: float) -> None:
        self._call(self._state.advance, seconds)

    def now(self) -> float:
        """The server's (virtual) clock."""
        return self._call(self._state.now)

    # --- media and introspection -------------------------------------------------------------
    def uploads(self, wechat_user: str | None = None) -> list[dict[str, Any]]:
        return self._call(media.received, self._state, wechat_user)

    def cdn_fail(self, *statuses: int) -> None:
        """The next CDN uploads answer these HTTP statuses (e.g. 500, 500), one each."""
        self._call(self._state.cdn_failures.extend, list(statuses))

    def full_upload_url(self, on: bool = True) -> None:
        """getuploadurl also answers ``upload_full_url`` (the client must prefer it)."""

        def flip() -> None:
            assert self._service is not None
            self._service.full_upload_url = on

        self._call(flip)

    def controls(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        """Serve ``POST /_control/<name>`` with ``handler`` (see ``__main__``)."""

        def install() -> None:
            assert self._service is not None
            self._service.control = handler

        self._call(install)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request: ``{method, path, query, headers, body, port}``."""
        return self._call(lambda: list(self._state.requests))

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions in the handlers (a server bug if any)."""
        return self._call(lambda: list(self._state.errors))
