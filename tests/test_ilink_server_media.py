"""The local iLink test server over real HTTP, media and input checks: the CDN round trip
with real AES-128-ECB, media references that must point to an upload, HTTP 400 on bad
input (never a 500), the recorded requests, and the standalone ``python -m`` mode."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ilink_server import ILinkServer
from tests.ilink_server.cdn import decrypt, encrypt, padded_size
from tests.ilink_server.probe import BASE_INFO, Client, headers, with_client

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3


@pytest.fixture
def srv() -> Iterator[ILinkServer]:
    with ILinkServer(longpoll=1.0) as server:
        yield server
        assert server.errors == []


async def upload(
    c: Client, to: str, data: bytes, media_type: int, md5: str | None = None
) -> tuple[int, str | None, bytes]:
    """getuploadurl + CDN POST: (status, x-encrypted-param, the key used)."""
    key = secrets.token_bytes(16)
    filekey = secrets.token_hex(16)
    answer = await c.api(
        "getuploadurl",
        filekey=filekey,
        media_type=media_type,
        to_user_id=to,
        rawsize=len(data),
        rawfilemd5=md5 or hashlib.md5(data).hexdigest(),
        filesize=padded_size(len(data)),
        no_need_thumb=True,
        aeskey=key.hex(),
    )
    url = answer.get("upload_full_url") or (
        f"{c.srv.cdn_base_url}/upload?encrypted_query_param={answer['upload_param']}"
        f"&filekey={filekey}"
    )
    body = encrypt(data, key)
    hdrs = {"Content-Type": "application/octet-stream"}
    async with c.session.post(url, data=body, headers=hdrs) as resp:
        return resp.status, resp.headers.get("x-encrypted-param"), key


def media_item(kind: int, param: str, key: bytes, data: bytes, name: str = "") -> dict:
    media = {
        "encrypt_query_param": param,
        "aes_key": base64.b64encode(key.hex().encode()).decode(),
        "encrypt_type": 1,
    }
    if kind == 2:
        return {"type": 2, "image_item": {"media": media, "mid_size": padded_size(len(data))}}
    return {"type": 4, "file_item": {"media": media, "file_name": name, "len": str(len(data))}}


def test_aes_ecb_matches_the_published_sizes() -> None:
    key = secrets.token_bytes(16)
    for size in (0, 1, 15, 16, 17, 1000):
        data = secrets.token_bytes(size)
        assert len(encrypt(data, key)) == padded_size(size) == (size // 16 + 1) * 16
        assert decrypt(encrypt(data, key), key) == data
    with pytest.raises(ValueError):
        decrypt(encrypt(b"secret", key), secrets.token_bytes(16))


def test_cdn_round_trip_image_and_file(srv: ILinkServer) -> None:
    report = b"col1,col2\n" + b"1,2\n" * 500

    async def test(c: Client) -> None:
        to = (await c.link("wx-alice"))["ilink_user_id"]
        ctx = srv.user_send("wx-alice", "send the plot")["context_token"]
        status, param, key = await upload(c, to, PNG, 1)
        assert status == 200 and param
        assert await c.send(to, ctx=ctx, items=[media_item(2, param, key, PNG)]) == {}
        srv.full_upload_url()  # the client must use upload_full_url when it is given
        status, param, key = await upload(c, to, report, 3)
        assert status == 200 and param
        item = media_item(4, param, key, report, "report.csv")
        assert await c.send(to, ctx=ctx, items=[item]) == {}
        async with c.session.get(
            f"{srv.cdn_base_url}/download", params={"encrypted_query_param": param}
        ) as resp:
            assert decrypt(await resp.read(), key) == report

    with_client(srv, test)
    got = srv.uploads("wx-alice")
    assert [(u["name"], u["media_type"], u["item_type"]) for u in got] == [
        (None, 1, 2),
        ("report.csv", 3, 4),
    ]
    assert got[0]["data"] == PNG and got[1]["data"] == report and all(u["visible"] for u in got)
    assert len(srv.sent("wx-alice")) == 2 and srv.uploads("wx-bob") == []
    cdn = [r for r in srv.requests if r["path"] == "/c2c/upload"]
    assert cdn[0]["body"] == {"size": padded_size(len(PNG))}


def test_cdn_and_media_failures(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        to = (await c.link("wx-alice"))["ilink_user_id"]
        ctx = srv.user_send("wx-alice", "hi")["context_token"]
        srv.cdn_fail(500)
        assert (await upload(c, to, PNG, 1))[:2] == (500, None)
        assert (await upload(c, to, PNG, 1, md5="0" * 32))[:2] == (400, None)
        status, param, key = await upload(c, to, PNG, 1)
        assert status == 200 and param
        hdrs = {"Content-Type": "application/octet-stream"}
        url = f"{srv.cdn_base_url}/upload?encrypted_query_param=unknown&filekey=x"
        async with c.session.post(url, data=encrypt(PNG, key), headers=hdrs) as resp:
            assert resp.status == 400 and resp.headers["x-error-message"]
        missing = media_item(2, "never-uploaded", key, PNG)
        answer = await c.send(to, ctx=ctx, items=[missing])
        assert answer["ret"] == -1 and "media not found" in answer["errmsg"]
        wrong_key = media_item(2, param, secrets.token_bytes(16), PNG)
        answer = await c.send(to, ctx=ctx, items=[wrong_key])
        assert answer["ret"] == -1 and "aes_key" in answer["errmsg"]
        wrong_len = media_item(4, param, key, PNG + b"x", "a.bin")
        assert (await c.send(to, ctx=ctx, items=[wrong_len]))["ret"] == -1
        answer = await c.api(
            "getuploadurl", filekey="k", media_type=3, to_user_id=to, rawsize=10,
            rawfilemd5="0" * 32, filesize=10, aeskey="0" * 32,
        )  # fmt: skip
        assert answer["ret"] == -1 and "filesize" in answer["errmsg"]
        assert len(srv.rejected()) == 3 and srv.sent() == [] and srv.uploads() == []

    with_client(srv, test)


def bad_sends(to: str) -> list[tuple[dict[str, Any], str]]:
    def msg(**fields: Any) -> dict[str, Any]:
        base = {
            "to_user_id": to,
            "message_type": 2,
            "item_list": [{"type": 1, "text_item": {"text": "x"}}],
        }
        return {"msg": {**base, **fields}, "base_info": BASE_INFO}

    return [
        ({"base_info": BASE_INFO}, "msg"),
        (msg(to_user_id=None), "to_user_id"),
        (msg(item_list=[]), "item_list"),
        (msg(item_list=[{"type": 9}]), "type 9"),
        (msg(item_list=[{"type": 1, "text_item": {}}]), "text"),
        (msg(item_list=[{"type": 2, "image_item": {"media": {}}}]), "encrypt_query_param"),
        (msg(message_type=1), "message_type"),
        ({"msg": msg()["msg"]}, "base_info"),
        ({"msg": msg()["msg"], "base_info": {"channel_version": "1"}}, "bot_agent"),
    ]


def test_bad_input_is_a_400_with_an_errmsg(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        to = (await c.link("wx-alice"))["ilink_user_id"]
        for body, word in bad_sends(to):
            status, answer = await c.post("/ilink/bot/sendmessage", body)
            assert status == 400 and word in answer["errmsg"], (body, answer)
        for raw in (b"{not json", b"[1, 2]", b""):
            status, answer = await c.post("/ilink/bot/getupdates", None, raw=raw)
            assert status == 400 and answer["errmsg"].startswith("body"), raw
        body = {"get_updates_buf": "", "base_info": BASE_INFO}
        for uin in (
            "",
            "%%%",
            base64.b64encode(b"-5").decode(),
            base64.b64encode(b"4294967296").decode(),
        ):
            hdrs = {**headers(c.token), "X-WECHAT-UIN": uin}
            status, answer = await c.post("/ilink/bot/getupdates", body, hdrs=hdrs)
            assert status == 400 and "X-WECHAT-UIN" in answer["errmsg"], uin
        status, answer = await c.post("/ilink/bot/getupdates", {**body, "get_updates_buf": 5})
        assert status == 400
        status, answer = await c.post("/ilink/bot/getuploadurl", {"base_info": BASE_INFO})
        assert status == 400 and "filekey" in answer["errmsg"]
        thumbless = {"filekey": "k", "media_type": 1, "to_user_id": to, "rawsize": 1,
                     "rawfilemd5": "0" * 32, "filesize": 16, "aeskey": "0" * 32}  # fmt: skip
        status, answer = await c.post(
            "/ilink/bot/getuploadurl", {**thumbless, "base_info": BASE_INFO}
        )
        assert status == 400 and "thumb" in answer["errmsg"]
        async with c.session.get(c.base + "/ilink/bot/get_qrcode_status") as resp:
            assert resp.status == 400 and "qrcode" in (await resp.json())["errmsg"]
        async with c.session.get(c.base + "/ilink/bot/get_bot_qrcode?bot_type=2") as resp:
            assert resp.status == 400
        assert srv.sent() == [] and srv.rejected() == []

    with_client(srv, test)


def test_requests_are_recorded_and_simple_endpoints_answer(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        creds = await c.link("wx-alice")
        config = await c.api("getconfig", ilink_user_id=creds["ilink_user_id"])
        assert config["ret"] == 0 and config["typing_ticket"]
        typing = {"ilink_user_id": creds["ilink_user_id"], "typing_ticket": "t", "status": 1}
        assert await c.api("sendtyping", **typing) == {"ret": 0}
        c.token = None
        assert (await c.api("getconfig", ilink_user_id="x"))["errcode"] == -14

    with_client(srv, test)
    last = [r for r in srv.requests if r["path"] == "/ilink/bot/sendtyping"][-1]
    assert last["method"] == "POST" and last["port"] == srv.ports[0]
    assert last["headers"]["AuthorizationType"] == "ilink_bot_token"
    assert last["headers"]["Authorization"].startswith("Bearer ")
    assert base64.b64decode(last["headers"]["X-WECHAT-UIN"]).isdigit()
    assert last["body"]["base_info"] == BASE_INFO and last["body"]["status"] == 1


def test_standalone_server_with_json_controls() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.ilink_server", "--port", "0", "--longpoll", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")

        def call(path: str, body: Any = None, **hdrs: str) -> Any:
            data = json.dumps(body).encode() if body is not None else b"{}"
            req = urllib.request.Request(base + path, data=data, headers=hdrs, method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())

        qr = call("/ilink/bot/get_bot_qrcode?bot_type=3", {"local_token_list": []},
                  **{"Content-Type": "application/json", "X-WECHAT-UIN": "MTIz"})  # fmt: skip
        assert call("/_control/wait_qrcode", {"timeout": 5})["result"] == qr["qrcode"]
        call("/_control/scan", {"qrcode": qr["qrcode"], "wechat_user": "wx-alice"})
        creds = call("/_control/confirm", {"qrcode": qr["qrcode"]})["result"]
        ctx = call("/_control/user_send", {"wechat_user": "wx-alice", "text": "hi"})["result"]
        send = {"msg": {"to_user_id": creds["ilink_user_id"], "message_type": 2,
                        "context_token": ctx["context_token"],
                        "item_list": [{"type": 1, "text_item": {"text": "pong"}}]},
                "base_info": BASE_INFO}  # fmt: skip
        hdrs = {**headers(creds["bot_token"]), "Content-Type": "application/json"}
        assert call("/ilink/bot/sendmessage", send, **hdrs) == {}
        sent = call("/_control/sent", {"wechat_user": "wx-alice"})["result"]
        assert [s["text"] for s in sent] == ["pong"]
        assert len(call("/_control/requests")["result"]) == 2
        assert call("/_control/errors")["result"] == []
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
