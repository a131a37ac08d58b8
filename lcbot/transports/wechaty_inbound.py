"""What real WeChat accounts send, turned into lcbot's ``Incoming`` (or nothing).

* Text from a contact is a command; from a group chat only when the bot is @-mentioned
  (``[wechaty] rooms = "mention"``).
* Images, voice, video, stickers, files, links, recalls and system messages arrive with
  XML or placeholder text: they get no reply, only a debug line.
* A quote-reply (``「name：quoted」`` + a dashed line + the reply) is the reply alone.
* The account's own messages are dropped, except what its owner sends to File Transfer
  when ``[wechaty] self_user`` names them: a command from that user, answered there.
"""

from __future__ import annotations

import collections
import logging
import re
import time
from typing import Any

from lcbot.transports.base import Incoming
from lcbot.transports.wechaty_settings import WechatySettings

log = logging.getLogger("lcbot.wechaty")

FILE_TRANSFER = "filehelper"  # WeChat's File Transfer (文件传输助手) contact

# 「name：quoted text」, a line of dashes ("- - - …"), then the reply
QUOTE = re.compile(r"^\s*「.*」\s*\n[ \t]*(?:-[ \t]*){3,}\n(?P<reply>.*)\Z", re.DOTALL)
MENTION_SPACE = "[\u2005\u0020]?"


def kind_of(msg: Any) -> str:
    """``"text"`` or the kind of a non-text message (``"image"``, ``"recalled"``, …)."""
    from wechaty_puppet import MessageType

    kind = msg.type()
    if kind == MessageType.MESSAGE_TYPE_TEXT:
        return "text"
    name = getattr(kind, "name", str(kind))
    return name.removeprefix("MESSAGE_TYPE_").lower()


def strip_quote(text: str) -> str:
    """The reply part of a quote-reply; any other text unchanged."""
    match = QUOTE.match(text)
    return match.group("reply").strip() if match else text


class OwnEcho:
    """What lcbot itself sent to File Transfer lately, so its echo is not a command."""

    def __init__(self, keep: float = 120.0, size: int = 200) -> None:
        self.keep = keep
        self._sent: collections.deque[tuple[float, str]] = collections.deque(maxlen=size)

    def remember(self, text: str) -> None:
        self._sent.append((time.monotonic(), text.strip()))

    def is_echo(self, text: str) -> bool:
        cutoff = time.monotonic() - self.keep
        text = text.strip()
        return any(at >= cutoff and sent == text for at, sent in self._sent)


async def incoming(msg: Any, settings: WechatySettings, bot: Any, echo: OwnEcho) -> Incoming | None:
    """The command in ``msg``, or None when it is not one (logged at debug level)."""
    talker = msg.talker()
    if talker is None:
        return None
    kind = kind_of(msg)
    if kind != "text":
        log.debug("ignored a %s message from %s", kind, talker.contact_id)
        return None
    text = msg.text()
    if not isinstance(text, str):
        return None
    text = strip_quote(text)
    if msg.is_self():
        return _from_owner(msg, text, settings, talker, echo)
    if not text.strip():
        return None
    room = msg.room()
    if room is None:
        return Incoming(talker.contact_id, talker.name, text)
    if settings.rooms == "off" or not await msg.mention_self():
        return None
    text = await _strip_mention(msg, text, bot)
    reply_to = f"room:{room.room_id}" if settings.room_replies == "room" else None
    topic = await _topic(room)
    return Incoming(talker.contact_id, talker.name, text, room.room_id, reply_to, topic)


def _from_owner(
    msg: Any, text: str, settings: WechatySettings, talker: Any, echo: OwnEcho
) -> Incoming | None:
    """The owner's own message: a command only when sent to File Transfer by them."""
    listener = msg.to()
    if (
        settings.self_user is None
        or msg.room() is not None
        or listener is None
        or listener.contact_id != FILE_TRANSFER
        or not text.strip()
        or echo.is_echo(text)
    ):
        return None
    return Incoming(
        talker.contact_id,
        talker.name,
        text,
        reply_to=f"contact:{FILE_TRANSFER}",
        user=settings.self_user,
    )


async def _strip_mention(msg: Any, text: str, bot: Any) -> str:
    try:
        stripped = await msg.mention_text()
    except Exception:
        stripped = text
    if stripped == text and bot is not None:  # fall back to removing "@<bot name>"
        me = bot.user_self().name
        stripped = re.sub(rf"@{re.escape(me)}{MENTION_SPACE}", "", text)
    return stripped.strip()


async def _topic(room: Any) -> str | None:
    try:
        return await room.topic()
    except Exception:  # the topic is for humans only
        return None
