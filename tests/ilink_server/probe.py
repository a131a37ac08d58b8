"""A raw iLink HTTP probe for the server's own tests (tests/test_ilink_server*.py): it sends
exactly what it is told, so those tests can also send what a real client must not."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Coroutine
from typing import Any

import aiohttp

from tests.ilink_server.server import ILinkServer

BASE_INFO = {"channel_version": "0.9.0", "bot_agent": "lcbot/0.9.0"}


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def headers(token: str | None = None) -> dict[str, str]:
    uin = base64.b64encode(str(secrets.randbits(32)).encode()).decode()
    found = {"AuthorizationType": "ilink_bot_token", "X-WECHAT-UIN": uin}
    if token:
        found["Authorization"] = f"Bearer {token}"
    return found


class Client:
    """Just enough of an iLink client to poke the server."""

    def __init__(self, session: aiohttp.ClientSession, srv: ILinkServer) -> None:
        self.session, self.srv, self.token = session, srv, None
        self.base = srv.base_url

    async def post(
        self, path: str, body: Any, hdrs: dict | None = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        hdrs = headers(self.token) if hdrs is None else hdrs
        if raw is not None:
            hdrs = {**hdrs, "Content-Type": "application/json"}
            resp = await self.session.post(self.base + path, data=raw, headers=hdrs)
        else:
            resp = await self.session.post(self.base + path, json=body, headers=hdrs)
        async with resp:
            return resp.status, await resp.json()

    async def api(self, name: str, **body: Any) -> dict[str, Any]:
        status, answer = await self.post(f"/ilink/bot/{name}", {**body, "base_info": BASE_INFO})
        assert status == 200, answer
        return answer

    async def qrcode(self, tokens: list[str] | None = None) -> str:
        body = {"local_token_list": tokens or [], "base_info": BASE_INFO}
        status, answer = await self.post("/ilink/bot/get_bot_qrcode?bot_type=3", body)
        assert status == 200 and answer["qrcode_img_content"].startswith("https://")
        return answer["qrcode"]

    async def status(self, code: str, verify: str | None = None, base: str | None = None) -> dict:
        params = {"qrcode": code, **({"verify_code": verify} if verify else {})}
        url = (base or self.base) + "/ilink/bot/get_qrcode_status"
        async with self.session.get(url, params=params) as resp:
            assert resp.status == 200
            return await resp.json()

    async def link(self, user: str = "wx-alice") -> dict[str, Any]:
        code = await self.qrcode()
        self.srv.scan(code, user)
        creds = self.srv.confirm(code)
        answer = await self.status(code)
        assert answer["status"] == "confirmed" and answer["bot_token"] == creds["bot_token"]
        self.token = creds["bot_token"]
        return creds

    async def updates(self, cursor: str = "") -> dict[str, Any]:
        return await self.api("getupdates", get_updates_buf=cursor)

    async def send(
        self, to: str, text: str = "hello", ctx: str | None = None, items: list | None = None
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "from_user_id": "",
            "to_user_id": to,
            "client_id": f"lcbot-{secrets.token_hex(8)}",
            "message_type": 2,
            "message_state": 2,
            "item_list": items or [{"type": 1, "text_item": {"text": text}}],
        }
        if ctx is not None:
            msg["context_token"] = ctx
        return await self.api("sendmessage", msg=msg)


def with_client(srv: ILinkServer, test: Any) -> Any:
    async def go() -> Any:
        async with aiohttp.ClientSession() as session:
            return await test(Client(session, srv))

    return run(go())
