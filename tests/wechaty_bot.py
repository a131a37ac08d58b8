"""A python-wechaty bot and a raw gRPC client for tests against the Wechaty test server.

``Bot`` is the real PyPI ``wechaty`` 0.10.7 client (made importable by
``lcbot.transports.wechaty_compat``); ``RawClient`` speaks the same gRPC stubs python-wechaty
uses, for RPCs python-wechaty does not expose alone (Start without Stop, a bare event stream).
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lcbot.transports import wechaty_compat
from tests.wechaty_mock import WechatyMockServer, free_port

WAIT = 20.0  # seconds: the most any single step may take

BOT, BOT_NAME = "wxid_lcbot", "LcBot"


@contextlib.contextmanager
def serve(
    tmp_path_factory: pytest.TempPathFactory, contacts: dict[str, str]
) -> Iterator[WechatyMockServer]:
    """A module's server: these contacts, logged in as BOT; must shut down cleanly."""
    log = tmp_path_factory.mktemp("wechaty-server") / "server.log"
    srv = WechatyMockServer(token="lcbot-test-token", log_path=log)
    srv.start()
    try:
        for contact_id, name in contacts.items():
            srv.add_contact(contact_id, name)
        srv.login(BOT, BOT_NAME)
        yield srv
    finally:
        code = srv.stop()
    assert code == 0, f"server did not shut down cleanly on SIGTERM\n{srv.log_tail()}"


def prepare(
    server: WechatyMockServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> WechatyMockServer:
    """Point python-wechaty at ``server``; keep its files in tmp_path; start clean."""
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CACHE_DIR", str(tmp_path / "wechaty-cache"))
    monkeypatch.chdir(tmp_path)
    # a failed test may have left it stopped; a bot's Stop leaves the puppet stopped, as on
    # a real gateway: start each test from a freshly booted one (puppet started)
    if not server.running or not server.health()["started"]:
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
    payloads: list[Any] = field(default_factory=list)  # every message's payload, own too
    logins: list[str] = field(default_factory=list)
    logouts: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    busy: int = 0  # message handlers running
    stopping: bool = False
    wechaty: Any = None
    task: asyncio.Task[None] | None = None

    login: bool = True  # (re)log the account in once the bot's Start is done

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
            # with wechaty_compat python-wechaty connects with Start only (no Stop): the
            # login the server has is kept; `login` makes sure the account is logged in
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
            self.stopping = True
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
            self.payloads.append(msg.payload)
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
            if not self.stopping:  # its own message's echo may race with bot.stop()
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


class RawClient:
    """python-wechaty's own gRPC stub (grpclib), without the Wechaty class around it::

    async with RawClient(server) as raw:        # a channel; no Stop, no Start
        await raw.attach()                      # the event stream, as after a connect
        await raw.wait_event("EVENT_TYPE_LOGIN")
    """

    def __init__(self, server: WechatyMockServer) -> None:
        self.server = server
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.channel: Any = None
        self.stub: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RawClient:
        wechaty_compat.apply()
        from grpclib.client import Channel
        from wechaty_grpc.wechaty import PuppetStub

        self.channel = Channel("127.0.0.1", self.server.port)
        self.channel._authority = self.server.token  # as python-wechaty sends its token
        self.stub = PuppetStub(self.channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel without any RPC: the client just goes away."""
        if self._task is not None:
            self._task.cancel()
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    async def attach(self) -> None:
        """Open the event stream and wait for the server's connect heartbeat."""
        from wechaty_grpc.wechaty.puppet import EventType

        async def pump() -> None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async for event in self.stub.event():
                    self.events.append((EventType(event.type).name, json.loads(event.payload)))

        self._task = asyncio.create_task(pump())
        await self.wait_event("EVENT_TYPE_HEARTBEAT")

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def wait_event(self, name: str, count: int = 1) -> dict[str, Any]:
        """The ``count``-th event called ``name`` (e.g. "EVENT_TYPE_LOGIN")'s payload."""
        await until(lambda: self.names().count(name) >= count, name)
        return [payload for n, payload in self.events if n == name][count - 1]
