"""The local iLink test server (tests/ilink_server) over real HTTP, login and chat: QR
states (expiry, verify code, redirect), long-poll cursors, the reply window and budget, rate
limits, session expiry and invisible sends. Media and bad input: test_ilink_server_media.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest

from tests.ilink_server import ILinkServer
from tests.ilink_server.probe import BASE_INFO, Client, headers, with_client


@pytest.fixture
def srv() -> Iterator[ILinkServer]:
    with ILinkServer(longpoll=1.0, max_replies=3) as server:
        yield server
        assert server.errors == []


# --- QR login ---------------------------------------------------------------------------------
def test_qr_login_wait_scaned_confirmed(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        code = await c.qrcode()
        assert srv.qrcodes() == [code] and await srv.wait_qrcode_async() == code
        assert (await c.status(code))["status"] == "wait"  # held, nothing happened
        poll = asyncio.create_task(c.status(code))
        await asyncio.sleep(0.1)
        srv.scan(code, "wx-alice")
        assert (await poll) == {"ret": 0, "status": "scaned"}
        with pytest.raises(TimeoutError):
            srv.wait_qrcode(timeout=0.1)  # the only code is scanned
        poll = asyncio.create_task(c.status(code))
        await asyncio.sleep(0.1)
        creds = srv.confirm(code)
        answer = await poll
        assert answer["status"] == "confirmed"
        assert answer["bot_token"] == creds["bot_token"] and answer["baseurl"] == srv.base_url
        assert answer["ilink_bot_id"] == creds["ilink_bot_id"]
        assert answer["ilink_user_id"] == srv.user_id("wx-alice") == creds["ilink_user_id"]
        async with c.session.get(c.base + "/ilink/bot/get_bot_qrcode?bot_type=3") as resp:
            assert resp.status == 200 and (await resp.json())["qrcode"] in srv.qrcodes()

    with_client(srv, test)
    asked = [r for r in srv.requests if r["path"] == "/ilink/bot/get_bot_qrcode"]
    assert asked[0]["query"] == {"bot_type": "3"} and asked[0]["method"] == "POST"
    assert asked[1]["method"] == "GET"


def test_qr_code_expires_after_its_lifetime_or_when_told(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        old, told = await c.qrcode(), await c.qrcode()
        srv.advance(121)
        assert (await c.status(old))["status"] == "expired"
        with pytest.raises(ValueError, match="expired"):
            srv.scan(old, "wx-alice")
        with pytest.raises(ValueError, match="expired"):
            srv.confirm(told)  # expired by the clock as well
        fresh = await c.qrcode()
        assert srv.wait_qrcode() == fresh
        srv.expire(fresh)
        assert (await c.status(fresh))["status"] == "expired"
        assert (await c.status("no-such-code"))["status"] == "expired"

    with_client(srv, test)


def test_verify_code_gates_the_confirmation(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        code = await c.qrcode()
        srv.scan(code, "wx-alice")
        srv.require_verify_code(code, code="4321")
        assert (await c.status(code))["status"] == "need_verifycode"
        assert (await c.status(code, verify="1111"))["status"] == "need_verifycode"
        assert (await c.status(code, verify="4321"))["status"] == "scaned"
        srv.confirm(code)
        assert (await c.status(code, verify="4321"))["status"] == "confirmed"

        early = await c.qrcode()  # confirmed on the phone before the code was typed
        srv.scan(early, "wx-carol")
        srv.require_verify_code(early, code="1234")
        srv.confirm(early)
        assert (await c.status(early))["status"] == "need_verifycode"
        answer = await c.status(early, verify="1234")
        assert answer["status"] == "confirmed" and answer["bot_token"]

        blocked = await c.qrcode()
        srv.scan(blocked, "wx-bob")
        srv.require_verify_code(blocked, code="9999")
        answers = [(await c.status(blocked, verify="0000"))["status"] for _ in range(3)]
        assert answers == ["need_verifycode", "need_verifycode", "verify_code_blocked"]
        assert (await c.status(blocked, verify="9999"))["status"] == "verify_code_blocked"
        with pytest.raises(ValueError, match="blocked"):
            srv.confirm(blocked)

    with_client(srv, test)


def test_redirect_points_to_the_second_listener(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        code = await c.qrcode()
        srv.scan(code, "wx-alice")
        srv.redirect(code)
        srv.confirm(code)
        answer = await c.status(code)
        assert answer["status"] == "scaned_but_redirect"
        host = answer["redirect_host"]
        assert host == srv.redirect_url.removeprefix("http://") and host != srv.base_url
        assert (await c.status(code))["status"] == "scaned_but_redirect"  # the old host
        confirmed = await c.status(code, base="http://" + host)
        assert confirmed["status"] == "confirmed" and "bot_token" in confirmed

    with_client(srv, test)


def test_already_linked_bot_answers_binded_redirect(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        creds = await c.link("wx-alice")
        code = await c.qrcode(tokens=[creds["bot_token"]])
        srv.scan(code, "wx-alice")
        assert (await c.status(code))["status"] == "binded_redirect"

    with_client(srv, test)


# --- getupdates -------------------------------------------------------------------------------
def test_getupdates_cursor_semantics(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        await c.link("wx-alice")
        first = srv.user_send("wx-alice", "one")
        second = srv.user_send("wx-alice", items=[{"type": 3, "voice_item": {"text": "two"}}])
        got = await c.updates("")
        assert [m["message_id"] for m in got["msgs"]] == [first["message_id"], second["message_id"]]
        assert got["ret"] == 0 and got["longpolling_timeout_ms"] == 1000
        msg = got["msgs"][0]
        assert msg["message_type"] == 1 and msg["from_user_id"] == srv.user_id("wx-alice")
        assert msg["item_list"] == [{"type": 1, "text_item": {"text": "one"}}]
        assert first["context_token"] != second["context_token"]
        cursor = got["get_updates_buf"]
        idle = await c.updates(cursor)  # held for the long-poll, then nothing new
        assert idle["msgs"] == [] and idle["get_updates_buf"] == cursor
        again = await c.updates("")  # an empty (or old) cursor gets everything again
        assert [m["seq"] for m in again["msgs"]] == [1, 2]
        poll = asyncio.create_task(c.updates(cursor))
        await asyncio.sleep(0.1)
        third = srv.user_send("wx-alice", "three")
        woke = await poll
        assert [m["message_id"] for m in woke["msgs"]] == [third["message_id"]]
        assert woke["get_updates_buf"] != cursor
        garbled = await c.updates("not-a-cursor")
        assert len(garbled["msgs"]) == 3

    with_client(srv, test)


# --- sendmessage ------------------------------------------------------------------------------
def test_only_the_newest_context_token_reaches_the_user(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        creds = await c.link("wx-alice")
        to = creds["ilink_user_id"]
        old = srv.user_send("wx-alice", "hi")["context_token"]
        new = srv.user_send("wx-alice", "hi again")["context_token"]
        sending = asyncio.create_task(c.send(to, "seen", new))
        assert (await srv.wait_sent_async(1, "wx-alice"))[0]["text"] == "seen"
        assert await sending == {}
        with pytest.raises(TimeoutError):
            srv.wait_sent(2, timeout=0.1)
        assert await c.send(to, "stale", old) == {}  # success, but the user never sees it
        assert await c.send(to, "no token") == {}
        assert [s["text"] for s in srv.sent("wx-alice")] == ["seen"]
        assert [s["text"] for s in srv.invisible()] == ["stale", "no token"]
        sent = srv.sent()[0]
        assert sent["to"] == "wx-alice" and sent["context_token"] == new
        assert sent["to_user_id"] == to and sent["at"] > 0
        answer = await c.send(srv.user_id("wx-bob"), "wrong user", new)
        assert answer["ret"] == -1 and srv.rejected()[0]["text"] == "wrong user"

    with_client(srv, test)


def test_reply_window_closes_after_the_users_last_message(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        to = (await c.link("wx-alice"))["ilink_user_id"]
        assert (await c.send(to, "before anything"))["ret"] == -2  # the user never wrote
        ctx = srv.user_send("wx-alice", "hi")["context_token"]
        srv.advance(86400 + 1)
        answer = await c.send(to, "too late", ctx)
        assert answer["ret"] == -2 and "rate limit" not in answer["errmsg"].lower()
        assert srv.rejected("wx-alice")[-1]["errmsg"] == answer["errmsg"]
        ctx = srv.user_send("wx-alice", "back")["context_token"]
        assert await c.send(to, "welcome back", ctx) == {}
        assert [s["text"] for s in srv.sent()] == ["welcome back"]

    with_client(srv, test)


def test_reply_budget_per_inbound_message(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        to = (await c.link("wx-alice"))["ilink_user_id"]
        ctx = srv.user_send("wx-alice", "hi")["context_token"]
        for n in range(3):
            assert await c.send(to, f"reply {n}", ctx) == {}
        answer = await c.send(to, "one too many", ctx)
        assert answer["ret"] == -2 and "rate limit" not in answer["errmsg"].lower()
        ctx = srv.user_send("wx-alice", "more")["context_token"]
        assert await c.send(to, "after the next message", ctx) == {}
        assert len(srv.sent()) == 4 and len(srv.rejected()) == 1

    with_client(srv, test)


def test_rate_limit_answers_ret_minus_2_until_it_lifts(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        to = (await c.link("wx-alice"))["ilink_user_id"]
        ctx = srv.user_send("wx-alice", "hi")["context_token"]
        srv.rate_limit("wx-alice", 30)
        assert await c.send(to, "now", ctx) == {"ret": -2, "errmsg": "rate limited"}
        srv.advance(31)
        assert await c.send(to, "later", ctx) == {}
        assert [s["text"] for s in srv.sent()] == ["later"]

    with_client(srv, test)


def test_session_expiry_and_bad_tokens_answer_minus_14(srv: ILinkServer) -> None:
    expired = {"ret": -14, "errcode": -14, "errmsg": "session timeout"}

    async def test(c: Client) -> None:
        creds = await c.link("wx-alice")
        ctx = srv.user_send("wx-alice", "hi")["context_token"]
        poll = asyncio.create_task(c.updates((await c.updates(""))["get_updates_buf"]))
        await asyncio.sleep(0.1)
        srv.expire_session("wx-alice")
        assert await poll == expired  # a held long-poll learns it too
        assert await c.send(creds["ilink_user_id"], "x", ctx) == expired
        assert srv.rejected("wx-alice")[0]["ret"] == -14
        c.token = "made-up"
        assert await c.updates() == expired
        c.token = None
        assert await c.updates() == expired
        status, answer = await c.post(
            "/ilink/bot/getupdates",
            {"get_updates_buf": "", "base_info": BASE_INFO},
            hdrs={**headers(creds["bot_token"]), "AuthorizationType": "other"},
        )
        assert status == 200 and answer == expired
        new = await c.link("wx-alice")  # a new scan: a new token that works
        assert new["bot_token"] != creds["bot_token"]
        assert (await c.updates())["ret"] == 0
        c.token = creds["bot_token"]
        assert await c.updates() == expired

    with_client(srv, test)


def test_a_new_link_retires_the_old_token(srv: ILinkServer) -> None:
    async def test(c: Client) -> None:
        old = (await c.link("wx-alice"))["bot_token"]
        await c.link("wx-alice")
        assert (await c.updates())["ret"] == 0
        c.token = old
        assert (await c.updates())["errcode"] == -14

    with_client(srv, test)


def test_records_stay_readable_after_stop() -> None:
    srv = ILinkServer(longpoll=5.0).start()

    async def test(c: Client) -> None:
        await c.link("wx-alice")
        poll = asyncio.create_task(c.updates())  # still held when the server stops
        await asyncio.sleep(0.1)
        await asyncio.to_thread(srv.stop)  # does not wait for the long-poll
        with pytest.raises(aiohttp.ClientError):
            await poll

    with_client(srv, test)
    assert [r["path"] for r in srv.requests][-1] == "/ilink/bot/getupdates"
    assert srv.sent() == [] and srv.errors == []
    with pytest.raises(RuntimeError, match="never started"):
        ILinkServer().sent()
