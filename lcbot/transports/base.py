"""The transport interface: a small async contract every chat backend implements."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Incoming:
    """A chat message as a transport received it.

    ``sender_id`` is the stable identity (WeChat contact id; the user name on the console),
    ``sender_name`` the display name. ``room_id`` is set for group chats. ``reply_to``
    overrides where replies go (default: the sender's user name).
    """

    sender_id: str
    sender_name: str
    text: str
    room_id: str | None = None
    reply_to: str | None = None


OnMessage = Callable[[Incoming], Awaitable[None]]


class Transport:
    """Base class. Subclasses implement ``start``, ``send`` and ``stop``.

    * ``start(on_message)``: begin receiving; call ``await on_message(incoming)`` per message.
    * ``send(recipient, text)``: deliver one message; return only when delivered, raise if not.
      ``recipient`` is a user name, ``room:<id>`` or ``contact:<id>``.
    * ``stop()``: stop receiving and release resources.
    * ``ready`` / ``ready_event``: whether sending is possible now (the drainer waits on it).
    * ``finished``: set by a transport whose input has ended (console EOF): the app stops.
    * ``identity``: ``"id"`` to recognise users by ``wxid``, ``"name"`` by user name.
    """

    name = "base"
    identity = "name"
    paced = False  # whether WeChat-style pacing applies by default

    def __init__(self) -> None:
        self.ready_event = asyncio.Event()
        self.finished = asyncio.Event()
        # user name → transport address (the WeChat contact id); set by the App
        self.address_of: Callable[[str], str | None] = lambda name: name

    def can_reach(self, user: Any) -> bool:
        """Whether messages to ``user`` can be delivered (WeChat: only bound users)."""
        return True

    @property
    def ready(self) -> bool:
        return self.ready_event.is_set()

    def set_ready(self, ready: bool) -> None:
        if ready:
            self.ready_event.set()
        else:
            self.ready_event.clear()

    async def start(self, on_message: OnMessage) -> None:
        raise NotImplementedError

    async def send(self, recipient: str, text: str) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        self.set_ready(False)
