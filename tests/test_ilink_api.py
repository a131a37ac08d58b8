"""lcbot.ilink.api and .cdn against a small recording HTTP server on 127.0.0.1: request
bodies and headers as in the published protocol, error classes, the CDN flow with real
AES, and which inbound messages become text."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from lcbot import __version__
from lcbot.ilink import cdn
from lcbot.ilink.api import ILinkAPI, ILinkError, client_version, inbound_text, message_key

TOKEN = "tok-Secret-1234567890"
Handler = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


class Recorder:
    """Answers by path (``handlers``); keeps every request."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        entry = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "raw": raw,
            "body": json.loads(raw) if request.content_type == "application/json" else None,
        }
        self.requests.append(entry)
        handler = self.handlers.get(request.path)
        if handler is None:
            return web.json_response({"ret": 0})
        return await handler(request, entry)

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]


@contextlib.asynccontextmanager
async def served(handlers: dict[str, Handler]) -> AsyncIterator[tuple[Recorder, ILinkAPI]]:
    recorder = Recorder(handlers)
    app = web.Application(client_max_size=1 << 24)
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    recorder.url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            yield recorder, ILinkAPI(session, recorder.url, TOKEN, f"{recorder.url}/c2c", 5.0)
    finally:
        await runner.cleanup()


def answer(value: Any, status: int = 200) -> Handler:
    async def handler(request: web.Request, entry: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(value, status=status)

    return handler


def slow(seconds: float) -> Handler:
    async def handler(request: web.Request, entry: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.json_response({"ret": 0})

    return handler


BASE_INFO = {"channel_version": __version__, "bot_agent": f"lcbot/{__version__}"}


def check_post_headers(headers: dict[str, str], token: str | None = TOKEN) -> None:
    assert headers["Content-Type"] == "application/json"
    assert headers["AuthorizationType"] == "ilink_bot_token"
    uin = base64.b64decode(headers["X-WECHAT-UIN"], validate=True).decode()
    assert uin.isdigit() and 0 <= int(uin) < 2**32
    assert headers["iLink-App-Id"] == ""
    assert headers["iLink-App-ClientVersion"] == str(client_version())
    if token is None:
        assert "Authorization" not in headers
    else:
        assert headers["Authorization"] == f"Bearer {token}"


def test_client_version_is_0x00MMNNPP():
    assert client_version("1.0.11") == 0x0001000B == 65547
    assert client_version("2.3") == 0x00020300
    assert client_version("0.1.0.dev4") == 256


def test_getupdates_body_and_headers():
    async def main():
        reply = {"ret": 0, "msgs": [{"message_id": 7}], "get_updates_buf": "c2"}
        async with served({"/ilink/bot/getupdates": answer(reply)}) as (rec, api):
            got = await api.get_updates("c1")
            await api.get_updates("c2")
        assert got["msgs"] == [{"message_id": 7}] and got["get_updates_buf"] == "c2"
        first, second = rec.calls("/ilink/bot/getupdates")
        assert first["method"] == "POST"
        assert first["body"] == {"get_updates_buf": "c1", "base_info": BASE_INFO}
        check_post_headers(first["headers"])
        check_post_headers(second["headers"])
        assert first["headers"]["X-WECHAT-UIN"] != second["headers"]["X-WECHAT-UIN"]

    asyncio.run(main())


def test_getupdates_that_times_out_on_the_client_is_an_empty_answer():
    async def main():
        async with served({"/ilink/bot/getupdates": slow(1)}) as (_rec, api):
            got = await api.get_updates("cursor-9", timeout=0.3)
        assert got == {"ret": 0, "msgs": [], "get_updates_buf": "cursor-9"}

    asyncio.run(main())


def test_sendmessage_body_follows_the_protocol():
    async def main():
        async with served({"/ilink/bot/sendmessage": answer({})}) as (rec, api):
            await api.send_text("wx-alice@im.wechat", "ctx-1", "Hello")
            await api.send_text("wx-alice@im.wechat", "ctx-1", "again")
        first, second = rec.calls("/ilink/bot/sendmessage")
        check_post_headers(first["headers"])
        msg = first["body"]["msg"]
        assert first["body"]["base_info"] == BASE_INFO
        assert msg["client_id"].startswith("lcbot-")
        assert msg["client_id"] != second["body"]["msg"]["client_id"]
        assert msg == {
            "from_user_id": "",
            "to_user_id": "wx-alice@im.wechat",
            "client_id": msg["client_id"],
            "message_type": 2,
            "message_state": 2,
            "item_list": [{"type": 1, "text_item": {"text": "Hello"}}],
            "context_token": "ctx-1",
        }

    asyncio.run(main())


def test_a_send_needs_a_context_token():
    async def main():
        async with served({}) as (rec, api):
            with pytest.raises(ValueError, match="context token"):
                await api.send_text("wx-alice", "", "hi")
        assert rec.requests == []

    asyncio.run(main())


def test_qr_code_and_status_requests():
    async def main():
        qr = {"qrcode": "q1", "qrcode_img_content": "https://liteapp.weixin.qq.com/q/q1"}
        handlers = {
            "/ilink/bot/get_bot_qrcode": answer(qr),
            "/ilink/bot/get_qrcode_status": answer({"status": "scaned"}),
        }
        async with served(handlers) as (rec, api):
            api.token = None
            assert await api.get_bot_qrcode() == qr
            assert await api.get_qrcode_status("q1") == {"status": "scaned"}
            await api.get_qrcode_status("q 1&x", verify_code="4321")
        (code,) = rec.calls("/ilink/bot/get_bot_qrcode")
        assert code["method"] == "POST" and code["query"] == {"bot_type": "3"}
        assert code["body"] == {"local_token_list": [], "base_info": BASE_INFO}
        check_post_headers(code["headers"], token=None)
        plain, verify = rec.calls("/ilink/bot/get_qrcode_status")
        assert plain["method"] == "GET" and plain["query"] == {"qrcode": "q1"}
        assert verify["query"] == {"qrcode": "q 1&x", "verify_code": "4321"}
        assert plain["headers"]["iLink-App-ClientVersion"] == str(client_version())

    asyncio.run(main())


def test_a_status_poll_that_times_out_is_wait():
    async def main():
        async with served({"/ilink/bot/get_qrcode_status": slow(1)}) as (_rec, api):
            assert await api.get_qrcode_status("q1", timeout=0.3) == {"status": "wait"}

    asyncio.run(main())


ERRORS = [
    ({"ret": -2, "errmsg": "rate limited"}, 200, "rate_limited"),
    ({"ret": -2, "errmsg": "Rate Limit exceeded"}, 200, "rate_limited"),
    ({"ret": -2, "errmsg": "reply window closed"}, 200, "refused"),
    ({"ret": -2}, 200, "refused"),
    ({"ret": -14, "errcode": -14, "errmsg": "session timeout"}, 200, "session_expired"),
    ({"errcode": -14}, 200, "session_expired"),
    ({"ret": -1, "errmsg": "system error"}, 200, None),
    ({"errcode": 40001, "errmsg": "bad"}, 200, None),
    ({"errmsg": "overloaded"}, 503, None),
    ({"errmsg": "rate limited", "ret": -2}, 400, None),
]


@pytest.mark.parametrize(("reply", "status", "kind"), ERRORS)
def test_errors_are_classified(reply, status, kind):
    async def main():
        async with served({"/ilink/bot/sendmessage": answer(reply, status)}) as (_rec, api):
            with pytest.raises(ILinkError) as caught:
                await api.send_text("wx-alice", "ctx", "hi")
        return caught.value

    error = asyncio.run(main())
    flags = {"rate_limited", "refused", "session_expired"}
    assert {f for f in flags if getattr(error, f)} == ({kind} if kind else set())
    assert str(error).startswith("sendmessage: ")
    assert error.status == (status if status >= 400 else None)


def test_error_texts_never_hold_the_token():
    async def main():
        echo = {"ret": -1, "errmsg": f"bad token Bearer {TOKEN} for bot"}
        handlers = {
            "/ilink/bot/sendmessage": answer(echo),
            "/ilink/bot/getupdates": answer({"errmsg": f"no such token {TOKEN}"}, 401),
        }
        async with served(handlers) as (_rec, api):
            errors = []
            for call in (api.send_text("wx", "ctx", "hi"), api.get_updates("")):
                with pytest.raises(ILinkError) as caught:
                    await call
                errors.append(caught.value)
        return errors

    errors = asyncio.run(main())
    assert str(errors[0]) == "sendmessage: ret=-1 errmsg=bad token Bearer *** for bot"
    assert str(errors[1]) == "getupdates: HTTP 401 errmsg=no such token ***"
    assert all(TOKEN not in repr(e) + str(e) for e in errors)


def test_getupdates_errors_raise():
    async def main():
        reply = {"ret": -14, "errcode": -14, "errmsg": "session timeout"}
        async with served({"/ilink/bot/getupdates": answer(reply)}) as (_rec, api):
            with pytest.raises(ILinkError) as caught:
                await api.get_updates("c")
        assert caught.value.session_expired

    asyncio.run(main())


def test_a_refused_connection_is_an_ilink_error():
    async def main():
        async with served({}) as (rec, api):
            url = rec.url
        async with aiohttp.ClientSession() as session:
            api = ILinkAPI(session, url, TOKEN, timeout=2)
            with pytest.raises(ILinkError, match="connection failed"):
                await api.send_text("wx", "ctx", "hi")

    asyncio.run(main())


# --- CDN ------------------------------------------------------------------------------------


def test_aes_128_ecb_matches_the_fips_197_vector_and_round_trips():
    key = bytes(range(16))
    block = bytes.fromhex("00112233445566778899aabbccddeeff")
    ciphertext = cdn.encrypt(block, key)
    assert ciphertext[:16].hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"
    assert len(ciphertext) == cdn.padded_size(16) == 32  # a whole block of padding
    for size in (0, 1, 15, 16, 17, 1000):
        data = bytes(range(256)) * 4
        data = data[:size]
        sealed = cdn.encrypt(data, key)
        assert len(sealed) == cdn.padded_size(size)
        assert cdn.decrypt(sealed, key) == data
    with pytest.raises(ValueError):
        cdn.decrypt(ciphertext, bytes(16))


def cdn_handlers(statuses: list[int]) -> dict[str, Handler]:
    async def upload(request: web.Request, entry: dict[str, Any]) -> web.StreamResponse:
        status = statuses.pop(0) if statuses else 200
        if status != 200:
            return web.Response(status=status, headers={"x-error-message": f"err {status}"})
        return web.Response(status=200, headers={"x-encrypted-param": "dl-param-1"})

    return {
        "/ilink/bot/getuploadurl": answer({"upload_param": "up/param=1"}),
        "/c2c/upload": upload,
        "/ilink/bot/sendmessage": answer({"ret": 0}),
    }


@pytest.mark.parametrize(
    ("name", "kind"), [("chart.PNG", "image"), ("photo.jpeg", "image"), ("report.pdf", "file")]
)
def test_send_file_uploads_encrypted_and_sends_the_media_item(tmp_path, name, kind):
    data = b"\x89PNG fake image bytes " * 50
    path = tmp_path / "blob"
    path.write_bytes(data)

    async def main():
        async with served(cdn_handlers([])) as (rec, api):
            await api.send_file("wx-alice", "ctx-7", path, name)
        return rec

    rec = asyncio.run(main())
    (ask,) = rec.calls("/ilink/bot/getuploadurl")
    body = ask["body"]
    check_post_headers(ask["headers"])
    key_hex = body["aeskey"]
    assert len(bytes.fromhex(key_hex)) == 16 and len(bytes.fromhex(body["filekey"])) == 16
    assert body == {
        "filekey": body["filekey"],
        "media_type": 1 if kind == "image" else 3,
        "to_user_id": "wx-alice",
        "rawsize": len(data),
        "rawfilemd5": hashlib.md5(data).hexdigest(),
        "filesize": cdn.padded_size(len(data)),
        "no_need_thumb": True,
        "aeskey": key_hex,
        "base_info": BASE_INFO,
    }
    (up,) = rec.calls("/c2c/upload")
    assert up["query"] == {"encrypted_query_param": "up/param=1", "filekey": body["filekey"]}
    assert up["headers"]["Content-Type"] == "application/octet-stream"
    assert len(up["raw"]) == body["filesize"]
    assert cdn.decrypt(up["raw"], bytes.fromhex(key_hex)) == data
    (sent,) = rec.calls("/ilink/bot/sendmessage")
    msg = sent["body"]["msg"]
    assert msg["context_token"] == "ctx-7" and msg["to_user_id"] == "wx-alice"
    (item,) = msg["item_list"]
    media = {
        "encrypt_query_param": "dl-param-1",
        "aes_key": base64.b64encode(key_hex.encode()).decode(),
        "encrypt_type": 1,
    }
    if kind == "image":
        assert item == {"type": 2, "image_item": {"media": media, "mid_size": len(up["raw"])}}
    else:
        assert item == {
            "type": 4,
            "file_item": {"media": media, "file_name": name, "len": str(len(data))},
        }


def test_upload_full_url_wins(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")

    async def main():
        handlers = cdn_handlers([])
        async with served(handlers) as (rec, api):
            full = f"{rec.url}/c2c/upload?direct=1"
            handlers["/ilink/bot/getuploadurl"] = answer({"upload_full_url": full})
            await api.send_file("wx", "ctx", path, "a.txt")
        return rec

    rec = asyncio.run(main())
    (up,) = rec.calls("/c2c/upload")
    assert up["query"] == {"direct": "1"}


def test_cdn_server_errors_are_retried_client_errors_are_not(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")

    async def main(statuses):
        async with served(cdn_handlers(statuses)) as (rec, api):
            try:
                await api.send_file("wx", "ctx", path, "a.txt")
                error = None
            except ILinkError as exc:
                error = exc
        return rec, error

    rec, error = asyncio.run(main([500, 502]))
    assert error is None and len(rec.calls("/c2c/upload")) == 3
    assert len(rec.calls("/ilink/bot/sendmessage")) == 1
    rec, error = asyncio.run(main([500, 500, 500, 500]))
    assert len(rec.calls("/c2c/upload")) == 3 and rec.calls("/ilink/bot/sendmessage") == []
    assert str(error) == "cdn upload: HTTP 500 errmsg=err 500"
    rec, error = asyncio.run(main([403]))
    assert len(rec.calls("/c2c/upload")) == 1 and rec.calls("/ilink/bot/sendmessage") == []
    assert error is not None and error.status == 403


# --- inbound --------------------------------------------------------------------------------


def user_msg(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"message_type": 1, "item_list": list(items), **fields}


TEXT = {"type": 1, "text_item": {"text": "status"}}
VOICE = {"type": 3, "voice_item": {"text": "run the crawler"}}
IMAGE = {"type": 2, "image_item": {"media": {}}}


@pytest.mark.parametrize(
    ("msg", "text"),
    [
        (user_msg(TEXT), "status"),
        (user_msg(TEXT, VOICE), "status\nrun the crawler"),
        (user_msg(IMAGE, TEXT), "status"),
        (user_msg(VOICE), "run the crawler"),
        (user_msg({"type": 3, "voice_item": {}}), None),
        (user_msg(IMAGE), None),
        (user_msg(), None),
        (user_msg({"type": 1, "text_item": {"text": "  "}}), None),
        ({"message_type": 2, "item_list": [TEXT]}, None),  # the bot's own message
        ({"item_list": [TEXT]}, "status"),  # no type: a user's (the bot's own say 2)
        ({"message_type": 1, "item_list": "junk"}, None),
        (user_msg("junk", {"type": 1}, {"type": 1, "text_item": "x"}), None),
    ],
)
def test_inbound_text(msg, text):
    assert inbound_text(msg) == text


def test_message_key():
    assert message_key({"message_id": 12, "seq": 3}) == "12"
    assert message_key({"seq": 3, "client_id": "c"}) == "seq:3"
    assert message_key({"client_id": "c"}) == "client:c"
    assert message_key({"message_id": "", "seq": 0}) == "seq:0"
    assert message_key({}) is None
    assert message_key({"message_id": True}) is None
