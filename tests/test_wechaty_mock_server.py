"""End to end: the real python-wechaty client against the real Node puppet-service server.

tests/wechaty_server runs ``PuppetServer`` (wechaty-puppet-service) around ``PuppetMock``;
``tests.wechaty_mock.WechatyMockServer`` drives it. The bot here is PyPI ``wechaty`` 0.10.7
made importable by ``lcbot.transports.wechaty_compat``. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lcbot.transports import wechaty_compat
from tests.wechaty_mock import WechatyMockServer, WechatyServerError, free_port

pytestmark = pytest.mark.wechat  # CI runs these on a second Python too

WAIT = 20.0  # seconds: the most any single step may take

BOT, BOT_NAME = "wxid_lcbot", "LcBot"
ALICE, BOB = "wxid_alice", "wxid_bob"
ROOM = "4242@chatroom"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WechatyMockServer]:
    log = tmp_path_factory.mktemp("wechaty-server") / "server.log"
    srv = WechatyMockServer(token="lcbot-test-token", log_path=log)
    srv.start()
    try:
        srv.add_contact(ALICE, "Alice")
        srv.add_contact(BOB, "Bob")
        srv.login(BOT, BOT_NAME)
        srv.add_room(ROOM, "ops", [ALICE, BOB, BOT])
        yield srv
    finally:
        code = srv.stop()
    assert code == 0, f"server did not shut down cleanly on SIGTERM\n{srv.log_tail()}"


@pytest.fixture
def wechaty_env(
    server: WechatyMockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> WechatyMockServer:
    """Point python-wechaty at ``server``; keep its files in tmp_path; start clean."""
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CACHE_DIR", str(tmp_path / "wechaty-cache"))
    monkeypatch.chdir(tmp_path)
    if not server.running:  # a failed test may have left it stopped
        server.restart()
    server.clear_sent()
    return server


@dataclass
class Seen:
    talker_id: str
    talker_name: str
    text: str
    room_id: str | None
    mention_self: bool


@dataclass
class Bot:
    """A python-wechaty bot: answers "ping" with "pong" and acknowledges room messages."""

    server: WechatyMockServer
    seen: list[Seen] = field(default_factory=list)
    own: list[str] = field(default_factory=list)  # texts of its own messages (is_self)
    logins: list[str] = field(default_factory=list)
    logouts: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    busy: int = 0  # message handlers running
    wechaty: Any = None
    task: asyncio.Task[None] | None = None

    login: bool = True  # log the account in once the bot's connect (Stop, Start) is done

    async def __aenter__(self) -> Bot:
        wechaty_compat.apply()
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from wechaty import Wechaty, WechatyOptions
        from wechaty_puppet import PuppetOptions

        # its own web port (checked at login) and an in-memory scheduler (no job.db); the
        # endpoint and token given, as lcbot gives them (compat shields the environment)
        puppet = PuppetOptions(end_point=self.server.endpoint, token=self.server.token)
        options = WechatyOptions(
            port=free_port(), scheduler=AsyncIOScheduler(), puppet_options=puppet
        )
        self.wechaty = Wechaty(options)
        self.wechaty.on("login", self._on_login)
        self.wechaty.on("logout", self._on_logout)
        self.wechaty.on("message", self._on_message)
        starts = self.server.health()["clientStarts"]
        self.task = asyncio.create_task(self.wechaty.start())
        try:
            # python-wechaty connects with Stop then Start: the Stop logs the account out
            await self.server.wait_health_async(lambda h: h["clientStarts"] > starts, WAIT)
            if self.login:
                self.server.login(BOT, BOT_NAME)  # the owner scans the QR code again
                await until(lambda: self.logins, "login")
            await self.server.wait_stream_async(WAIT)
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        assert not self.errors, self.errors

    async def stop(self) -> None:
        """Stop the bot; its start() task must then end by itself (no 60 s restart)."""
        assert self.task is not None
        try:
            # a reply is recorded by the server before say() returns: let handlers finish
            # (stopping under a running say() fails it with StreamTerminatedError)
            await until(lambda: self.busy == 0, "message handlers to finish")
            await asyncio.wait_for(self.wechaty.stop(), WAIT)
            await asyncio.wait_for(asyncio.shield(self.task), 10)
        finally:
            if not self.task.done():
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task
                raise AssertionError("bot.start() still running 10 s after bot.stop()")

    async def _on_login(self, contact: Any) -> None:
        self.logins.append(contact.contact_id)

    async def _on_logout(self, contact: Any, *_: Any) -> None:
        self.logouts.append(contact.contact_id)

    async def _on_message(self, msg: Any) -> None:
        self.busy += 1
        try:
            if msg.is_self():
                self.own.append(msg.text())
                return
            talker, room = msg.talker(), msg.room()
            seen = Seen(
                talker_id=talker.contact_id,
                talker_name=talker.name,
                text=msg.text(),
                room_id=room.room_id if room is not None else None,
                mention_self=await msg.mention_self(),
            )
            self.seen.append(seen)
            if seen.text == "ping":
                await msg.say("pong")
            elif room is not None:
                await msg.say(f"heard {seen.talker_id} mention={seen.mention_self}")
        except Exception as exc:  # pragma: no cover - reported by __aexit__
            self.errors.append(exc)
        finally:
            self.busy -= 1


async def until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.02)


def texts(sent: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["to"], m["text"]) for m in sent]


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
                # the reconnect's Stop drops the login the new server booted with: scan again
                await server.wait_health_async(lambda h: h["clientStarts"] >= 1, WAIT)
                server.login(BOT, BOT_NAME)
                # the new connection's login reaches the bot again (a wechaty_compat fix)
                await until(lambda: len(bot.logins) == 2, "second login")
                await server.wait_stream_async(WAIT)
            server.say(ALICE, "ping")
            await until(lambda: texts(server.sent()).count((ALICE, "pong")) == 2, "pong")
            await asyncio.wait_for(bot.wechaty.Contact.load(ALICE).say("after"), WAIT)
            await server.wait_sent_async(lambda m: m["text"] == "after")
        assert bot.logins == [BOT, BOT]

    asyncio.run(scenario())
