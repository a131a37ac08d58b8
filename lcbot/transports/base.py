"""The transport interface: a small async contract every chat backend implements."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Incoming:
    """A chat message as a transport received it.

    ``sender_id`` is the stable identity (WeChat contact id; the user name on the console),
    ``sender_name`` the display name. ``room_id`` is set for group chats, ``room_topic``
    (the group's name) when the transport knows it. ``reply_to`` overrides where replies
    go (default: the sender's user name; ``room:<id>`` answers in the group). ``user``
    names the lcbot user when the transport itself vouches for the sender (the WeChat
    account's owner, ``[wechaty] self_user``).
    """

    sender_id: str
    sender_name: str
    text: str
    room_id: str | None = None
    reply_to: str | None = None
    room_topic: str | None = None
    user: str | None = None


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


class Undeliverable(Exception):
    """A send that no retry can fix (raised by ``send``/``send_file``): dead at once."""


@dataclass(frozen=True)
class Hold:
    """Why messages to one address wait now."""

    reason: str  # one line: "reply window closed (…): waits for alice to write"
    until: float | None = None  # time.monotonic() when it lifts by itself; None: until wake()


class Deferred(Exception):
    """Raised by send/send_file: the backend refused for now (rate limited, window closed).
    Not the message's fault: no attempt is counted; the drainer asks hold() again."""


OnMessage = Callable[[Incoming], Awaitable[None]]
# (contact id, display name, greeting) → the user that contact is (now) bound to, or None
AdmitContact = Callable[[str, str, str], Awaitable[str | None]]
# (contact id, display name) → whether that contact may add the bot to a group chat
MayInvite = Callable[[str, str], bool]


class Transport:
    """Base class. Subclasses implement ``start``, ``send`` and ``stop``.

    * ``start(on_message)``: begin receiving; call ``await on_message(incoming)`` per message.
    * ``send(address, text)``: deliver one message; return only when delivered, raise if not.
    * ``send_file(address, path, name)``: deliver the file at ``path`` as ``name``, same
      contract; the file is removed after it returns. The default raises
      ``NotImplementedError``: the message is dead at once ("cannot send files").
    * ``stop()``: stop receiving and release resources.
    * ``ready`` / ``ready_event``: whether sending is possible now (the drainer waits on it).
    * ``finished``: set by a transport whose input has ended (console EOF): the bot stops.
    * ``identity``: ``"id"`` to recognise users by ``wxid``, ``"name"`` by user name.
    * ``paced``: whether WeChat's pace applies by default (``[ratelimit]``).
    * ``max_file_size``: the largest file the backend can carry (``[files] max_size`` is
      lowered to it).
    * ``admit_contact`` / ``may_invite``: set by the app before ``start``; how a transport
      answers friend requests and group invitations (None: it ignores them).
    * ``gated``: True when the backend takes messages to an address only at times (a reply
      window, a rate limit): the drainer then asks ``hold(address)`` before sending — a
      ``Hold`` makes that recipient's messages wait (coalesced) until ``Hold.until`` or
      ``wake()`` — and ``allowance(address)`` (sends left before a hold; None: no limit):
      at 1, the last permitted message tells the recipient how many more wait. ``send``
      may raise ``Deferred``: no attempt is counted, the drainer asks ``hold()`` again.
    * ``wake`` / ``notify``: set by the app. ``wake()`` wakes the drainer (a hold may have
      lifted; call it on the event loop); ``notify(user, text)`` queues a durable notice to
      ``user`` (None: every root user; any thread).
    """

    name = "base"
    identity = "name"
    paced = False
    max_file_size: int | None = None  # bytes the backend takes in one file (None: no limit)
    admit_contact: AdmitContact | None = None
    may_invite: MayInvite | None = None
    gated = False  # True: the drainer asks hold()/allowance() before sending
    wake: Callable[[], None] = staticmethod(lambda: None)  # set by the app: wake the drainer
    notify: Callable[[str | None, str], None] | None = None  # set by the app: durable notice

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

    def hold(self, address: Address) -> Hold | None:
        """Why messages to ``address`` must wait now (None: they may go); gated only."""
        return None

    def allowance(self, address: Address) -> int | None:
        """Sends ``address`` may still receive before a hold (None: no limit); gated only."""
        return None

    async def start(self, on_message: OnMessage) -> None:
        raise NotImplementedError

    async def send(self, address: Address, text: str) -> None:
        raise NotImplementedError

    async def send_file(self, address: Address, path: Path, name: str) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        self.set_ready(False)
