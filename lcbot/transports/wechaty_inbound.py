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
import html
import logging
import re
import time
from pathlib import Path
from typing import Any

from lcbot.transports.base import Incoming
from lcbot.transports.wechaty_settings import WechatySettings

log = logging.getLogger("lcbot.wechaty")

FILE_TRANSFER = "filehelper"  # WeChat's File Transfer (文件传输助手) contact
OWNER_FILE = "wechat-owner.json"

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


def _normalized(text: str) -> str:
    """Text as compared with its echo: puppets may escape HTML, turn newlines into <br/>
    and collapse spaces in what comes back."""
    text = html.unescape(re.sub(r"<br\s*/?>", "\n", text, flags=re.IGNORECASE))
    return " ".join(text.split())


class Owner:
    """The account owner's File Transfer chat (``[wechaty] self_user``).

    Trust on first use: the account logged in when ``self_user`` is first used is recorded
    (``<data_dir>/wechat-owner.json``); another account logged in later (someone scanned the
    login QR code with their own WeChat) gets no owner commands. lcbot's own replies to File
    Transfer come back as the account's messages: they are recognised (also when the puppet
    altered them a little) and never run, and at most ``per_minute`` owner commands run.
    """

    def __init__(self, data_dir: Path, keep: float = 120.0, per_minute: int = 20) -> None:
        self.file = data_dir / OWNER_FILE
        self.keep = keep
        self.per_minute = per_minute
        self.trusted = False  # whether the account logged in now is the recorded owner
        self._sent: collections.deque[tuple[float, str]] = collections.deque(maxlen=200)
        self._runs: collections.deque[float] = collections.deque()

    def logged_in(self, contact_id: str) -> None:
        """Check (or, the first time, record) the account that logged in."""
        import json

        try:
            owner = json.loads(self.file.read_text()).get("contact_id")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner is None:
            from lcbot.private import write_private

            write_private(self.file, json.dumps({"contact_id": contact_id}).encode())
            owner = contact_id
        self.trusted = owner == contact_id
        if not self.trusted:
            log.warning(
                "logged in as %s, not the owner's account %s: File Transfer commands are "
                "off (delete %s to make this account the owner's)",
                contact_id,
                owner,
                self.file,
            )

    def remember(self, text: str) -> None:
        self._sent.append((time.monotonic(), _normalized(text)))

    def is_echo(self, text: str) -> bool:
        cutoff = time.monotonic() - self.keep
        text = _normalized(text)
        return any(at >= cutoff and sent == text for at, sent in self._sent)

    def allow(self) -> bool:
        """One more owner command now, unless ``per_minute`` ran in the last minute."""
        now = time.monotonic()
        while self._runs and self._runs[0] < now - 60:
            self._runs.popleft()
        if len(self._runs) >= self.per_minute:
            log.warning("more than %d File Transfer commands a minute: ignored", self.per_minute)
            return False
        self._runs.append(now)
        return True


async def incoming(msg: Any, settings: WechatySettings, bot: Any, owner: Owner) -> Incoming | None:
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
        return _from_owner(msg, text, settings, talker, owner)
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
    msg: Any, text: str, settings: WechatySettings, talker: Any, owner: Owner
) -> Incoming | None:
    """The owner's own message: a command only when sent to File Transfer by them."""
    listener = msg.to()
    if (
        settings.self_user is None
        or msg.room() is not None
        or listener is None
        or listener.contact_id != FILE_TRANSFER
        or not text.strip()
        or not owner.trusted
        or owner.is_echo(text)
        or not owner.allow()
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
