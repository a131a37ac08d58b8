"""``python -m tests.ilink_server [--port N]``: run the test server standalone.

Prints its base URL on the first line, then serves until SIGINT/SIGTERM. Another process
drives it with ``POST /_control/<method>`` and a JSON object of keyword arguments (the
:class:`ILinkServer` method of that name); the answer is ``{"result": ...}`` (bytes as
base64), or HTTP 400 ``{"error": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.ilink_server.server import ILinkServer

CONTROLS = {
    "qrcodes", "wait_qrcode", "scan", "require_verify_code", "redirect", "confirm", "expire",
    "user_send", "sent", "invisible", "rejected", "rate_limit", "expire_session", "advance",
    "uploads", "cdn_fail", "requests", "errors", "user_id", "now",
}  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def control_handler(srv: ILinkServer) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in CONTROLS:
            return web.json_response({"error": f"unknown control {name!r}"}, status=404)
        try:
            kwargs = json.loads(await request.read() or b"{}")
            attr = getattr(type(srv), name)
            if isinstance(attr, property):
                result = getattr(srv, name)
            else:
                result = await asyncio.to_thread(getattr(srv, name), *(), **kwargs)
        except (TypeError, ValueError, LookupError, TimeoutError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return web.json_response({"result": _plain(result)})

    return handle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.ilink_server")
    parser.add_argument("--port", type=int, default=0, help="API port (0: any free port)")
    parser.add_argument("--longpoll", type=float, default=35.0)
    parser.add_argument("--window", type=float, default=86400.0)
    parser.add_argument("--max-replies", type=int, default=10)
    parser.add_argument("--qr-lifetime", type=float, default=120.0)
    args = parser.parse_args(argv)
    srv = ILinkServer(args.window, args.max_replies, args.longpoll, args.qr_lifetime, args.port)
    srv.start()
    srv.controls(control_handler(srv))
    print(srv.base_url, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    srv.stop()


if __name__ == "__main__":
    main()
