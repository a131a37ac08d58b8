"""End to end: the real python-wechaty client against the real Node puppet-service server.

tests/wechaty_server runs ``PuppetServer`` (wechaty-puppet-service) around ``PuppetMock``;
``tests.wechaty_mock.WechatyMockServer`` drives it. The bot here is PyPI ``wechaty`` 0.10.7
made importable by ``lcbot.transports.wechaty_compat``. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.wechaty_bot import (
    BOT,
    BOT_NAME,
    WAIT,
    Bot,
    RawClient,
    Seen,
    serve,
    texts,
    until,
)
from tests.wechaty_mock import WechatyMockServer, WechatyServerError

pytestmark = pytest.mark.wechat  # CI runs these on a second Python too

ALICE, BOB = "wxid_alice", "wxid_bob"
ROOM = "4242@chatroom"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WechatyMockServer]:
    with serve(tmp_path_factory, {ALICE: "Alice", BOB: "Bob"}) as srv:
        srv.add_room(ROOM, "ops", [ALICE, BOB, BOT])
        yield srv


def test_direct_message_ping_pong(wechaty_env: WechatyMockServer) -> None:
    server = wechaty_env

    async def scenario() -> None:
        async with Bot(server) as bot:
            assert bot.logins == [BOT]
            server.say(ALICE, "ping")
            reply = await server.wait_sent_async(lambda m: m["text"] == "pong", WAIT)
            assert (reply["to"], reply["type"]) == (ALICE, "Text")
            # the bot hears its own reply, as a real account does
            await until(lambda: "pong" in bot.own, "own message")
            assert bot.seen == [Seen(ALICE, "Alice", "ping", None, False)]
        assert texts(server.sent()) == [(ALICE, "pong")]

    asyncio.run(scenario())


def test_room_messages_with_and_without_mention(wechaty_env: WechatyMockServer) -> None:
    server = wechaty_env

    async def scenario() -> None:
        async with Bot(server) as bot:
            server.say_in_room(ROOM, BOB, "status please")
            await server.wait_sent_async(lambda m: m["text"] == f"heard {BOB} mention=False")
            server.say_in_room(ROOM, ALICE, "status please", mention=True)
            await server.wait_sent_async(lambda m: m["text"] == f"heard {ALICE} mention=True")
            # Bob takes Alice's display name: the contact id still tells them apart
            server.add_contact(BOB, "Alice")
            try:
                server.say_in_room(ROOM, BOB, "I am Alice", mention=True)
                await server.wait_sent_async(lambda m: m["text"] == f"heard {BOB} mention=True")
            finally:
                server.add_contact(BOB, "Bob")
        assert [(s.talker_id, s.room_id, s.mention_self) for s in bot.seen] == [
            (BOB, ROOM, False),
            (ALICE, ROOM, True),
            (BOB, ROOM, True),
        ]
        assert bot.seen[0].text == "status please"
        assert bot.seen[1].text == f"@{BOT_NAME}\u2005status please"
        assert [to for to, _ in texts(server.sent())] == [ROOM, ROOM, ROOM]

    asyncio.run(scenario())


def test_bots_one_after_another_stop_cleanly_and_send_to_contacts(
    wechaty_env: WechatyMockServer,
) -> None:
    """Each bot's ``Contact.load(id).say()`` goes through its own (live) puppet, and each
    ``bot.stop()`` ends its ``start()`` task (no 60 s "network is not good" restart)."""
    server = wechaty_env

    async def scenario(i: int) -> None:
        async with Bot(server) as bot:
            contact = bot.wechaty.Contact.load(ALICE)
            await asyncio.wait_for(contact.say(f"hello {i}"), WAIT)
            room = bot.wechaty.Room.load(ROOM)
            await asyncio.wait_for(room.say(f"room {i}"), WAIT)

    for i in range(4):
        asyncio.run(scenario(i))
    assert texts(server.sent()) == [
        item for i in range(4) for item in ((ALICE, f"hello {i}"), (ROOM, f"room {i}"))
    ]


def test_logout_reaches_the_bot(wechaty_env: WechatyMockServer) -> None:
    server = wechaty_env

    async def scenario() -> None:
        async with Bot(server) as bot:
            server.logout()
            await until(lambda: bot.logouts, "logout")
            assert bot.logouts == [BOT]
            assert server.health()["loggedIn"] is False
            with pytest.raises(WechatyServerError, match="409"):
                server.say(ALICE, "ping")

    asyncio.run(scenario())


def test_restart_keeps_port_and_state(wechaty_env: WechatyMockServer) -> None:
    server = wechaty_env

    ack = (ROOM, f"heard {BOB} mention=True")

    async def ping(n: int) -> Bot:
        """The n-th ping and room message: sent() keeps the earlier replies."""
        async with Bot(server) as bot:
            server.say(ALICE, "ping")
            await until(lambda: texts(server.sent()).count((ALICE, "pong")) == n, "pong")
            server.say_in_room(ROOM, BOB, "still there?", mention=True)
            await until(lambda: texts(server.sent()).count(ack) == n, "room reply")
        return bot

    asyncio.run(ping(1))
    port = server.port
    server.restart()
    assert server.port == port
    health = server.health()
    assert (health["grpcPort"], health["streams"]) == (port, 0)
    bot = asyncio.run(ping(2))  # contacts, room and login were replayed
    assert bot.logins == [BOT]
    assert texts(server.sent()) == [(ALICE, "pong"), ack, (ALICE, "pong"), ack]


def test_bot_reconnects_after_server_restart(wechaty_env: WechatyMockServer) -> None:
    """A live bot survives a server restart. python-wechaty sleeps 60 s before it
    reconnects; here that sleep ends as soon as the server is back, the rest is the real
    reconnect path."""
    server = wechaty_env
    real_sleep = asyncio.sleep
    restarted = threading.Event()

    async def sleep(delay: float, *args: Any, **kwargs: Any) -> Any:
        if delay < 60:
            return await real_sleep(delay, *args, **kwargs)
        await until(restarted.is_set, "server restart")  # python-wechaty's reconnect delay
        return args[0] if args else kwargs.get("result")

    def restart() -> None:
        server.restart()
        restarted.set()

    async def scenario() -> None:
        async with Bot(server) as bot:
            server.say(ALICE, "ping")
            await server.wait_sent_async(lambda m: m["text"] == "pong")
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(asyncio, "sleep", sleep)
                await asyncio.to_thread(restart)
                # the new server booted logged in; the reconnect sends Start only (compat)
                await server.wait_health_async(lambda h: h["clientStarts"] >= 1, WAIT)
                assert server.health()["clientStops"] == 0 and server.health()["loggedIn"]
                # the new connection's login reaches the bot again (a wechaty_compat fix)
                await until(lambda: len(bot.logins) == 2, "second login")
                await server.wait_stream_async(WAIT)
            server.say(ALICE, "ping")
            await until(lambda: texts(server.sent()).count((ALICE, "pong")) == 2, "pong")
            await asyncio.wait_for(bot.wechaty.Contact.load(ALICE).say("after"), WAIT)
            await server.wait_sent_async(lambda m: m["text"] == "after")
        assert bot.logins == [BOT, BOT]

    asyncio.run(scenario())


# -- the modeled puppet: what a real puppet service does on Start, Stop and disconnects --


def test_puppet_runs_from_server_start_and_a_client_start_keeps_the_login(
    wechaty_env: WechatyMockServer,
) -> None:
    server = wechaty_env
    server.login(BOT, BOT_NAME)
    before = server.health()
    assert (before["started"], before["loggedIn"], before["selfId"]) == (True, True, BOT)

    async def scenario() -> None:
        async with RawClient(server) as raw:
            await raw.stub.start()  # on a started puppet: nothing changes
            await raw.attach()
            assert (await raw.wait_event("EVENT_TYPE_LOGIN")) == {"contactId": BOT}

    asyncio.run(scenario())
    after = server.health()
    assert after["clientStarts"] == before["clientStarts"] + 1
    assert (after["clientStops"], after["loggedIn"]) == (before["clientStops"], True)


def test_login_survives_a_client_that_disconnects_without_stop(
    wechaty_env: WechatyMockServer,
) -> None:
    server = wechaty_env
    server.login(BOT, BOT_NAME)
    stops = server.health()["clientStops"]

    async def attach_and_leave() -> list[str]:
        async with RawClient(server) as raw:
            await raw.attach()
            await raw.wait_event("EVENT_TYPE_LOGIN")
            return raw.names()

    assert asyncio.run(attach_and_leave()) == ["EVENT_TYPE_HEARTBEAT", "EVENT_TYPE_LOGIN"]
    health = server.wait_health(lambda h: h["streams"] == 0, WAIT)
    assert (health["loggedIn"], health["clientStops"]) == (True, stops)
    # the next client to attach is told at once, as PuppetServer does
    assert asyncio.run(attach_and_leave()) == ["EVENT_TYPE_HEARTBEAT", "EVENT_TYPE_LOGIN"]


def test_stop_rpc_logs_out_and_the_next_start_does_not_log_in(
    wechaty_env: WechatyMockServer,
) -> None:
    server = wechaty_env
    server.login(BOT, BOT_NAME)
    before = server.health()

    async def scenario() -> None:
        async with RawClient(server) as raw:
            await raw.attach()
            await raw.wait_event("EVENT_TYPE_LOGIN")
            await raw.stub.stop()
            health = server.health()
            assert (health["started"], health["loggedIn"], health["selfId"]) == (False, False, None)
            assert health["clientStops"] == before["clientStops"] + 1
            # PuppetServer ends the event stream before it stops the puppet: the puppet's
            # logout event has no stream left to reach
            assert "EVENT_TYPE_LOGOUT" not in raw.names()
            with pytest.raises(WechatyServerError, match="409 puppet is stopped"):
                server.login(BOT, BOT_NAME)  # nobody can scan a stopped puppet's QR code
            await raw.stub.start()
        async with RawClient(server) as raw:
            await raw.attach()
            assert server.health()["loggedIn"] is False  # Start did not log back in
            server.login(BOT, BOT_NAME)  # the owner scans again
            assert (await raw.wait_event("EVENT_TYPE_LOGIN")) == {"contactId": BOT}
            assert raw.names() == ["EVENT_TYPE_HEARTBEAT", "EVENT_TYPE_LOGIN"]

    asyncio.run(scenario())


def test_python_wechaty_with_compat_keeps_the_login(wechaty_env: WechatyMockServer) -> None:
    """Upstream python-wechaty connects with Stop then Start and stops with Stop, and on
    wechaty-puppet 1.x each Stop logs the account out (see the RawClient tests above);
    with wechaty_compat it sends Start only and closes its channel."""
    server = wechaty_env
    server.login(BOT, BOT_NAME)
    before = server.health()

    async def scenario() -> None:
        async with Bot(server, login=False) as bot:
            health = server.health()
            assert (health["loggedIn"], health["clientStops"]) == (True, before["clientStops"])
            await until(lambda: bot.logins, "the login event sent on attach")
            assert bot.logins == [BOT] and bot.logouts == []

    asyncio.run(scenario())
    after = server.health()  # bot.stop() closed the channel: still logged in
    assert (after["loggedIn"], after["clientStops"]) == (True, before["clientStops"])
    assert after["clientStarts"] == before["clientStarts"] + 1


def test_scan_is_replayed_to_a_client_that_attaches_before_the_login(
    wechaty_env: WechatyMockServer,
) -> None:
    server = wechaty_env
    server.logout()
    qrcode = "https://login.weixin.qq.com/l/IaysbZa04Q=="
    server.scan("Waiting", qrcode=qrcode)
    with pytest.raises(WechatyServerError, match='400 status: unknown value "Lost"'):
        server.scan("Lost")

    async def scenario() -> None:
        async with RawClient(server) as raw:
            await raw.attach()  # the cached scan follows the heartbeat
            assert (await raw.wait_event("EVENT_TYPE_SCAN")) == {"status": 2, "qrcode": qrcode}
            server.scan(3)  # Scanned, by number
            assert (await raw.wait_event("EVENT_TYPE_SCAN", 2)) == {"status": 3}
            server.scan("Confirmed")
            server.login(BOT, BOT_NAME)
            await raw.wait_event("EVENT_TYPE_LOGIN")
        async with RawClient(server) as raw:  # after the login: no scan replayed
            await raw.attach()
            await raw.wait_event("EVENT_TYPE_LOGIN")
            assert raw.names() == ["EVENT_TYPE_HEARTBEAT", "EVENT_TYPE_LOGIN"]
        with pytest.raises(WechatyServerError, match="409 already logged in"):
            server.scan("Waiting", qrcode=qrcode)

    asyncio.run(scenario())


def test_error_event_is_a_gerror_on_the_wire(wechaty_env: WechatyMockServer) -> None:
    """wechaty-puppet 1.x's PuppetSkeleton.emit('error') wraps anything in a GError and
    sends ``{"gerror": "<GError JSON>"}``; python-wechaty's EventErrorPayload has only
    ``data``."""
    server = wechaty_env
    server.login(BOT, BOT_NAME)

    async def scenario() -> None:
        async with RawClient(server) as raw:
            await raw.attach()
            emitted = server.error("disk on fire")
            event = await raw.wait_event("EVENT_TYPE_ERROR")
            assert event == emitted and list(event) == ["gerror"]
            gerror = json.loads(event["gerror"])
            assert (gerror["message"], gerror["name"], gerror["code"]) == (
                "disk on fire",
                "Error",
                2,
            )

    asyncio.run(scenario())


def test_ding_answers_with_dong_and_a_frozen_server_leaves_it_hanging(
    wechaty_env: WechatyMockServer,
) -> None:
    server = wechaty_env
    dings = server.health()["dings"]

    async def scenario() -> None:
        async with RawClient(server) as raw:
            await raw.attach()
            with server.frozen():
                ding = asyncio.create_task(raw.stub.ding(data="are you there"))
                done, _ = await asyncio.wait({ding}, timeout=1)
                assert not done, "a frozen server answered"
            await asyncio.wait_for(ding, WAIT)  # thawed: the RPC completes
            assert (await raw.wait_event("EVENT_TYPE_DONG")) == {"data": "are you there"}

    asyncio.run(scenario())
    assert server.health()["dings"] == dings + 1
