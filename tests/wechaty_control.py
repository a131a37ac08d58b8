"""The Wechaty test server's control routes as Python methods (mixed into WechatyMockServer).

Every method is one JSON call to the server's control channel on 127.0.0.1; routes are
documented in tests/wechaty_server/README.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from tests.wechaty_kinds import kind_message, quote_text

Sent = dict[str, Any]


class WechatyServerError(RuntimeError):
    """The test server could not be installed, started or asked something."""


class WechatyControl:
    """Route methods; the subclass provides ``_call`` and keeps what restart() replays."""

    _contacts: dict[str, str | None]
    _rooms: dict[str, tuple[str | None, list[str]]]
    _self: tuple[str, str | None] | None
    _sent_before: list[Sent]

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        raise NotImplementedError

    def health(self) -> dict[str, Any]:
        """``{ok, grpcPort, controlPort, bind, tls, started, loggedIn, selfId, loginAs,
        streams, clientStarts, clientStops, dings}``."""
        return self._call("GET", "/health")

    def add_contact(self, contact_id: str, name: str | None = None) -> None:
        """Create a contact (or rename an existing one); ``name`` defaults to the id."""
        self._call("POST", "/contact", {"id": contact_id, "name": name})
        self._contacts[contact_id] = name

    def add_room(self, room_id: str, topic: str | None = None, members: Iterable[str] = ()) -> None:
        """Create (or update) a room; members must be existing contacts (add the bot too)."""
        members = list(members)
        self._call("POST", "/room", {"id": room_id, "topic": topic, "members": members})
        self._rooms[room_id] = (topic, members)

    # -- the account --------------------------------------------------------------------

    def scan(self, status: str | int, qrcode: str | None = None, data: str | None = None) -> None:
        """A scan event: ``status`` is a ScanStatus name (``"Waiting"``, ``"Scanned"``,
        ``"Confirmed"``, ...) or number. The server replays the last one to a client that
        attaches before the login."""
        self._call("POST", "/scan", {"status": status, "qrcode": qrcode, "data": data})

    def login(self, contact_id: str, name: str | None = None) -> None:
        """The scan was confirmed: log in as this contact (created if missing) now. A
        client's Stop RPC drops the login (as on every real puppet); call this again
        after the client's next Start. 409 while a client has the puppet stopped."""
        self._call("POST", "/login", {"id": contact_id, "name": name})
        self._contacts.setdefault(contact_id, name)
        self._self = (contact_id, name)

    def logout(self) -> None:
        """The account was logged out (e.g. from the phone): a logout event."""
        self._call("POST", "/logout", {})
        self._self = None

    def error(self, message: str) -> dict[str, str]:
        """The puppet emits an error event; returns its payload ``{"gerror": json}``."""
        return self._call("POST", "/error", {"message": message})

    # -- requests -------------------------------------------------------------------------

    def friend_request(self, from_id: str, hello: str, name: str | None = None) -> str:
        """``from_id`` (created if missing; not a friend until accepted) asks to be a
        friend with greeting ``hello``; returns the friendship id."""
        body = {"from": from_id, "hello": hello, "name": name}
        return self._call("POST", "/friendship", body)["id"]

    def friendships(self) -> list[dict[str, Any]]:
        """``[{id, from, hello, accepted}]``, oldest first."""
        return self._call("GET", "/friendships")

    def room_invite(self, room_id: str, inviter: str, topic: str | None = None) -> str:
        """``inviter`` invites the bot to ``room_id`` (joined, and created if missing, on
        accept); returns the invitation id."""
        body = {"room": room_id, "inviter": inviter, "topic": topic}
        return self._call("POST", "/room-invite", body)["id"]

    def room_invites(self) -> list[dict[str, Any]]:
        """``[{id, room, inviter, accepted}]``, oldest first."""
        return self._call("GET", "/room-invites")

    # -- messages to the bot ----------------------------------------------------------

    def say(self, contact_id: str, text: str, type: str | None = None) -> str:
        """``contact_id`` sends ``text`` to the bot (``type`` a wechaty-puppet
        MessageType name, Text by default); returns the message id."""
        body = {"from": contact_id, "text": text, "type": type}
        return self._call("POST", "/say", body)["id"]

    def say_in_room(
        self,
        room_id: str,
        contact_id: str,
        text: str,
        mention: bool = False,
        type: str | None = None,
    ) -> str:
        """``contact_id`` says ``text`` in ``room_id``; ``mention=True`` @-mentions the bot
        ("@<bot name>\\u2005" is put in front of the text, as WeChat does). Returns the id."""
        body = {"room": room_id, "from": contact_id, "text": text, "mention": mention, "type": type}
        return self._call("POST", "/room/say", body)["id"]

    def say_kind(
        self, contact_id: str, kind: str, text: str | None = None, room: str | None = None
    ) -> str:
        """``contact_id`` sends a message of ``kind`` (see tests.wechaty_kinds.KINDS:
        image, voice, video, sticker, file, link, recall, ...) with the XML a real puppet
        delivers, or ``text``; to the bot, or into ``room``. Returns the message id."""
        name = self._contacts.get(contact_id) or contact_id
        bot = self._self[0] if self._self else ""
        type_name, default = kind_message(kind, contact_id, room or bot, name)
        text = default if text is None else text
        if room is not None:
            return self.say_in_room(room, contact_id, text, type=type_name)
        return self.say(contact_id, text, type=type_name)

    def say_quote(
        self,
        contact_id: str,
        quoted_name: str,
        quoted_text: str,
        reply: str,
        room: str | None = None,
        mention: bool = False,
    ) -> str:
        """``contact_id`` replies ``reply`` quoting ``quoted_name``'s ``quoted_text``, in
        WeChat's text form (tests.wechaty_kinds.quote_text); to the bot or in ``room``."""
        text = quote_text(quoted_name, quoted_text, reply)
        if room is not None:
            return self.say_in_room(room, contact_id, text, mention=mention)
        return self.say(contact_id, text)

    def say_self(self, to: str, text: str) -> str:
        """The account itself (its owner, on the phone) sends ``text`` to ``to``, a contact
        (e.g. ``"filehelper"``, File Transfer) or a room. Not in :meth:`sent`."""
        return self._call("POST", "/say-self", {"to": to, "text": text})["id"]

    # -- what the bot sent ----------------------------------------------------------------

    def sent(self) -> list[Sent]:
        """What the bot sent, oldest first: ``{"to": contact or room id, "text", "type",
        "id", ...}`` (``type`` is "Text" for text; files add name, size, sha256, mediaType)."""
        return self._sent_before + self._call("GET", "/sent")

    def clear_sent(self) -> None:
        self._call("DELETE", "/sent")
        self._sent_before = []

    def wait_sent(
        self, predicate: Callable[[Sent], bool] | None = None, timeout: float = 10
    ) -> Sent:
        """Block until the bot has sent a message matching ``predicate`` (any message if
        None) and return the first such message; ``TimeoutError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            sent = self.sent()
            for message in sent:
                if predicate is None or predicate(message):
                    return message
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no matching message sent within {timeout} s; sent: {sent}")
            time.sleep(0.05)

    def wait_health(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        """Block until :meth:`health` matches ``predicate`` (e.g. ``lambda h:
        h["clientStarts"] >= 1``) and return it; ``TimeoutError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.health()
            if predicate(health):
                return health
            if time.monotonic() >= deadline:
                raise TimeoutError(f"health did not match within {timeout} s: {health}")
            time.sleep(0.05)

    async def wait_health_async(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        """:meth:`wait_health` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_health, predicate, timeout)

    def wait_stream(self, timeout: float = 30) -> None:
        """Block until a client's event stream is attached (messages injected before that
        are dropped); ``TimeoutError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no client event stream within {timeout} s")
            try:
                self._call(
                    "GET", f"/stream?timeout={min(remaining, 5):.3f}", timeout=min(remaining, 5) + 5
                )
                return
            except WechatyServerError as err:
                if " 408 " not in str(err):
                    raise

    async def wait_sent_async(
        self, predicate: Callable[[Sent], bool] | None = None, timeout: float = 10
    ) -> Sent:
        """:meth:`wait_sent` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_sent, predicate, timeout)

    async def wait_stream_async(self, timeout: float = 30) -> None:
        """:meth:`wait_stream` without blocking the event loop."""
        await asyncio.to_thread(self.wait_stream, timeout)
