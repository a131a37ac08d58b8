"""The aiohttp application: iLink bot API, QR login and the CDN upload endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.ilink_server import media, validate
from tests.ilink_server.state import SESSION_TIMEOUT, State
from tests.ilink_server.validate import BadRequest

QR_HOLD = 5.0  # get_qrcode_status holds at most this long (and never longer than longpoll)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Service:
    """The handlers over one :class:`State`; lives on the server's event loop."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.ports: list[int] = []  # [main, redirect target]: set once listening
        self.full_upload_url = False  # getuploadurl also answers upload_full_url
        self.control: Handler | None = None  # POST /_control/<name> (standalone mode only)
        self._changed = asyncio.Event()
        state.on_change = self.bump

    def bump(self) -> None:
        """Something changed: wake every long-poll to look again."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout: float) -> None:
        event = self._changed
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), max(timeout, 0.0))

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware], client_max_size=64 * 2**20)
        bot = "/ilink/bot/"
        app.router.add_post(bot + "get_bot_qrcode", self.get_bot_qrcode)
        app.router.add_get(bot + "get_bot_qrcode", self.get_bot_qrcode)
        app.router.add_get(bot + "get_qrcode_status", self.get_qrcode_status)
        app.router.add_post(bot + "getupdates", self.getupdates)
        app.router.add_post(bot + "sendmessage", self.sendmessage)
        app.router.add_post(bot + "getuploadurl", self.getuploadurl)
        for name in ("getconfig", "sendtyping", "msg/notifystart", "msg/notifystop"):
            app.router.add_post(bot + name, self.simple)
        app.router.add_post("/c2c/upload", self.cdn_upload)
        app.router.add_get("/c2c/download", self.cdn_download)
        app.router.add_post("/_control/{name}", self.controls)
        return app

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = (
                validate.parse_json(raw) if request.content_type == "application/json" else None
            )
        except BadRequest:
            body = None
        if request.path.startswith("/_control/"):
            return await handler(request)
        self.state.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body if body is not None else ({"size": len(raw)} if raw else None),
                "port": self.port_of(request),
            }
        )
        try:
            return await handler(request)
        except BadRequest as exc:
            return web.json_response({"ret": -1, "errmsg": str(exc)}, status=400)
        except (web.HTTPException, asyncio.CancelledError):
            raise
        except Exception:
            self.state.errors.append(traceback.format_exc())
            raise

    async def controls(self, request: web.Request) -> web.StreamResponse:
        if self.control is None:
            raise web.HTTPNotFound()
        return await self.control(request)

    @staticmethod
    def port_of(request: web.Request) -> int:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return int(sockname[1]) if sockname else 0

    async def api_body(self, request: web.Request) -> tuple[dict[str, Any], str | None]:
        """The checked JSON body of a bot API POST and its bearer token (None: -14)."""
        body = validate.parse_json(await request.read())
        validate.check_api(request.headers, body)
        return body, validate.bearer(request.headers)

    # --- QR login --------------------------------------------------------------------------
    async def get_bot_qrcode(self, request: web.Request) -> web.Response:
        if request.query.get("bot_type") != "3":
            raise BadRequest("bot_type must be 3")
        tokens: list[str] = []
        if request.method == "POST":
            validate.check_uin(request.headers)
            raw = await request.read()
            body = validate.parse_json(raw) if raw else {}
            tokens = body.get("local_token_list") or []
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise BadRequest("local_token_list must be a list of strings")
        qr = self.state.issue_qrcode(tokens)
        img = f"https://liteapp.weixin.qq.com/q/7GiQu1?qrcode={qr.code}&bot_type=3"
        return web.json_response({"ret": 0, "qrcode": qr.code, "qrcode_img_content": img})

    async def get_qrcode_status(self, request: web.Request) -> web.Response:
        code = request.query.get("qrcode")
        if not code:
            raise BadRequest("qrcode missing")
        verify = request.query.get("verify_code")
        main = self.port_of(request) == self.ports[0]
        redirect_host = f"127.0.0.1:{self.ports[1]}" if main else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(self.state.longpoll, QR_HOLD)
        qr = self.state.qrs.get(code)
        # a code typed for a scan that waits for one is answered at once (right or wrong)
        asked = verify is not None and qr is not None and qr.verify_code is not None
        asked = asked and qr is not None and not qr.verified
        while True:
            answer = self.state.qr_status(code, verify if asked else None, redirect_host)
            left = deadline - loop.time()
            if qr is None or asked or answer["status"] != qr.last or left <= 0:
                if qr is not None:
                    qr.last = answer["status"]
                return web.json_response({"ret": 0, **answer})
            expires = self.state.qr_expires_in(qr)
            await self.changed(left if expires is None else min(left, expires + 0.01))

    # --- messages --------------------------------------------------------------------------
    async def getupdates(self, request: web.Request) -> web.Response:
        body, token = await self.api_body(request)
        cursor = validate.updates_request(body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.state.longpoll
        while True:
            bot = self.state.bot_for(token)
            if bot is None:
                return web.json_response(SESSION_TIMEOUT)
            msgs, buf = self.state.updates_after(bot, cursor)
            left = deadline - loop.time()
            if msgs or left <= 0:
                return web.json_response(
                    {
                        "ret": 0,
                        "msgs": msgs,
                        "get_updates_buf": buf,
                        "longpolling_timeout_ms": int(self.state.longpoll * 1000),
                    }
                )
            await self.changed(left)

    async def sendmessage(self, request: web.Request) -> web.Response:
        body, token = await self.api_body(request)
        msg = validate.message(body)
        bot = self.state.bot_for(token)
        if bot is None:
            return web.json_response(self.state.refuse_expired(token, msg))
        return web.json_response(self.state.send(bot, msg))

    async def simple(self, request: web.Request) -> web.Response:
        _, token = await self.api_body(request)
        if self.state.bot_for(token) is None:
            return web.json_response(SESSION_TIMEOUT)
        answer: dict[str, Any] = {"ret": 0}
        if request.path.endswith("/getconfig"):
            answer["typing_ticket"] = secrets.token_urlsafe(16)
        return web.json_response(answer)

    # --- media -----------------------------------------------------------------------------
    async def getuploadurl(self, request: web.Request) -> web.Response:
        body, token = await self.api_body(request)
        req = validate.upload_request(body)
        bot = self.state.bot_for(token)
        if bot is None:
            return web.json_response(SESSION_TIMEOUT)
        cdn_base = self.url(self.port_of(request)) + "/c2c"
        answer = media.upload_url(self.state, bot, req, cdn_base, self.full_upload_url)
        return web.json_response(answer)

    async def cdn_upload(self, request: web.Request) -> web.Response:
        if request.content_type != "application/octet-stream":
            return web.Response(status=400, headers={"x-error-message": "not octet-stream"})
        data = await request.read()
        query = request.query
        status, headers = media.cdn_upload(
            self.state, query.get("encrypted_query_param"), query.get("filekey"), data
        )
        return web.Response(status=status, headers=headers)

    async def cdn_download(self, request: web.Request) -> web.Response:
        upload = self.state.uploads.get(request.query.get("encrypted_query_param", ""))
        if upload is None:
            return web.Response(status=404, headers={"x-error-message": "no such media"})
        return web.Response(body=upload["ciphertext"], content_type="application/octet-stream")
