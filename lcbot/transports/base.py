"""The transport interface: a small async contract every chat backend implements."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Incoming:
    """A chat message as a transport received it.

    ``sender_id`` is the stable identity (WeChat contact id; the user name on the console),
    ``sender_name`` the display name. ``room_id`` is set for group chats, ``room_topic``
    (the group's name) when the transport knows it. ``reply_to`` overrides where replies
    go (default: the sender's user name; ``room:<id>`` answers in the group).
    """

    sender_id: str
    sender_name: str
    text: str
    room_id: str | None = None
    reply_to: str | None = None
    room_topic: str | None = None


@dataclass(frozen=True)
class Address:
    """Where a transport delivers one message.

    ``kind``: ``"contact"`` (a contact id), ``"room"`` (a group chat id) or ``"name"`` (a
    contact found by display name: the console, WeChat with ``identity = "name"``).
    ``label`` is what to call it in logs and on the console (the user name when there is one).
    """

    kind: str
    id: str
    label: str


OnMessage = Callable[[Incoming], Awaitable[None]]


class Transport:
    """Base class. Subclasses implement ``start``, ``send`` and ``stop``.

    * ``start(on_message)``: begin receiving; call ``await on_message(incoming)`` per message.
    * ``send(address, text)``: deliver one message; return only when delivered, raise if not.
    * ``stop()``: stop receiving and release resources.
    * ``ready`` / ``ready_event``: whether sending is possible now (the drainer waits on it).
    * ``finished``: set by a transport whose input has ended (console EOF): the bot stops.
    * ``identity``: ``"id"`` to recognise users by ``wxid``, ``"name"`` by user name.
    * ``paced``: whether WeChat's pace applies by default (``[ratelimit]``).
    """

    name = "base"
    identity = "name"
    paced = False

    def __init__(self) -> None:
        self.ready_event = asyncio.Event()
        self.finished = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.ready_event.is_set()

    def set_ready(self, ready: bool) -> None:
        if ready:
            self.ready_event.set()
        else:
            self.ready_event.clear()

    def status(self) -> dict[str, object]:
        """What ``/healthz`` shows of the transport beyond ``name`` and ``ready``."""
        return {}

    async def start(self, on_message: OnMessage) -> None:
        raise NotImplementedError

    async def send(self, address: Address, text: str) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        self.set_ready(False)
