"""The iLink test server's state: QR codes, linked bots, inbound messages and sends.

Plain Python, no I/O: the aiohttp handlers (``app.py``) and the control API
(``server.py``) call these methods on the server's event loop only, so no lock is needed.
Time is virtual: :meth:`State.now` is the wall clock plus whatever :meth:`advance` added.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.ilink_server import cdn

SESSION_TIMEOUT = {"ret": -14, "errcode": -14, "errmsg": "session timeout"}
RATE_LIMITED = "rate limited"
MAX_WRONG_CODES = 3


@dataclass
class QRCode:
    """One login code and what the phone did with it."""

    code: str
    issued_at: float
    local_tokens: list[str]
    wechat_user: str | None = None
    verify_code: str | None = None
    verified: bool = False
    wrong: int = 0
    redirect: bool = False
    expired: bool = False
    blocked: bool = False
    confirmed: dict[str, Any] | None = None
    last: str = "wait"  # the status last answered: the long-poll holds while it is unchanged


@dataclass
class Bot:
    """A link: one bot token for one WeChat user."""

    bot_id: str
    token: str
    wechat_user: str
    user_id: str
    expired: bool = False  # expire_session() or replaced by a newer link
    messages: list[dict[str, Any]] = field(default_factory=list)
    context_token: str | None = None
    last_inbound: float | None = None
    replies: int = 0


def user_id_of(wechat_user: str) -> str:
    """The stable iLink user id of a WeChat user (like ``o9cq8...@im.wechat``)."""
    return "o9" + hashlib.sha1(wechat_user.encode()).hexdigest()[:26] + "@im.wechat"


def encode_cursor(bot_id: str, seq: int) -> str:
    return base64.b64encode(json.dumps({"bot": bot_id, "seq": seq}).encode()).decode()


def decode_cursor(buf: str, bot_id: str) -> int:
    """The last seq a cursor covers; 0 (everything again) for "" or a foreign/garbled one."""
    try:
        data = json.loads(base64.b64decode(buf, validate=True))
        return int(data["seq"]) if data.get("bot") == bot_id else 0
    except (ValueError, TypeError, KeyError, AttributeError):
        return 0


class State:
    """Everything the fake iLink service knows."""

    def __init__(self, window: float, max_replies: int, longpoll: float, qr_lifetime: float):
        self.window = window
        self.max_replies = max_replies
        self.longpoll = longpoll
        self.qr_lifetime = qr_lifetime
        self.offset = 0.0
        self.qrs: dict[str, QRCode] = {}
        self.bots: dict[str, Bot] = {}  # by token
        self.current: dict[str, Bot] = {}  # wechat user -> newest bot
        self.rate_limited: dict[str, float] = {}  # wechat user -> until (virtual time)
        self.sends: list[dict[str, Any]] = []  # every sendmessage outcome
        self.uploads: dict[str, dict[str, Any]] = {}  # download param -> upload
        self.pending_uploads: dict[str, dict[str, Any]] = {}  # upload param -> getuploadurl
        self.requests: list[dict[str, Any]] = []
        self.errors: list[str] = []  # unexpected exceptions in handlers (server bugs)
        self.next_message_id = 7_000_000_001
        self.on_change: Callable[[], None] = lambda: None
        self.cdn_failures: list[int] = []  # statuses the next CDN uploads answer

    # --- clock ---------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.on_change()

    # --- QR login --------------------------------------------------------------------------
    def issue_qrcode(self, local_tokens: list[str]) -> QRCode:
        qr = QRCode(secrets.token_hex(16), self.now(), list(local_tokens))
        self.qrs[qr.code] = qr
        self.on_change()
        return qr

    def qr(self, code: str) -> QRCode:
        try:
            return self.qrs[code]
        except KeyError:
            raise LookupError(f"no such qrcode: {code!r}") from None

    def qr_expires_in(self, qr: QRCode) -> float | None:
        """Seconds until ``qr`` expires by itself (None: it cannot any more)."""
        if qr.confirmed or qr.expired or qr.blocked:
            return None
        return qr.issued_at + self.qr_lifetime - self.now()

    def _live(self, qr: QRCode) -> None:
        left = self.qr_expires_in(qr)
        if left is not None and left <= 0:
            qr.expired = True
        if qr.expired or qr.blocked:
            raise ValueError(f"qrcode {qr.code} is {'expired' if qr.expired else 'blocked'}")

    def scan(self, code: str, wechat_user: str) -> None:
        qr = self.qr(code)
        self._live(qr)
        if qr.wechat_user is not None:
            raise ValueError(f"qrcode {code} was already scanned by {qr.wechat_user}")
        qr.wechat_user = wechat_user
        self.on_change()

    def require_verify_code(self, code: str, verify_code: str) -> None:
        qr = self.qr(code)
        self._live(qr)
        qr.verify_code, qr.verified, qr.wrong = verify_code, False, 0
        self.on_change()

    def redirect(self, code: str) -> None:
        qr = self.qr(code)
        self._live(qr)
        qr.redirect = True
        self.on_change()

    def expire(self, code: str) -> None:
        self.qr(code).expired = True
        self.on_change()

    def confirm(self, code: str, base_url: str) -> dict[str, Any]:
        """The phone confirms: a new bot for the scanning user (the old link stops working)."""
        qr = self.qr(code)
        self._live(qr)
        if qr.confirmed:
            return dict(qr.confirmed)
        if qr.wechat_user is None:
            raise ValueError(f"qrcode {code} was not scanned")
        old = self.current.get(qr.wechat_user)
        if old is not None:
            old.expired = True
        bot_id = secrets.token_hex(6) + "@im.bot"
        bot = Bot(
            bot_id, f"{bot_id}:{secrets.token_hex(20)}", qr.wechat_user, user_id_of(qr.wechat_user)
        )
        self.bots[bot.token] = bot
        self.current[qr.wechat_user] = bot
        qr.confirmed = {
            "bot_token": bot.token,
            "ilink_bot_id": bot_id,
            "baseurl": base_url,
            "ilink_user_id": bot.user_id,
            "wechat_user": qr.wechat_user,
        }
        self.on_change()
        return dict(qr.confirmed)

    def qr_status(self, code: str, verify_code: str | None, redirect_host: str | None) -> dict:
        """What get_qrcode_status answers now; ``redirect_host`` None: asked on that host."""
        qr = self.qrs.get(code)
        if qr is None:
            return {"status": "expired"}
        if qr.blocked:
            return {"status": "verify_code_blocked"}
        left = self.qr_expires_in(qr)
        if qr.expired or (left is not None and left <= 0):
            qr.expired = True
            return {"status": "expired"}
        if qr.wechat_user is None:
            return {"status": "wait"}
        bound = self.current.get(qr.wechat_user)
        if bound and not bound.expired and bound.token in qr.local_tokens:
            return {"status": "binded_redirect"}
        if qr.verify_code is not None and not qr.verified:
            if verify_code is None:
                return {"status": "need_verifycode"}
            if verify_code != qr.verify_code:
                qr.wrong += 1
                if qr.wrong >= MAX_WRONG_CODES:
                    qr.blocked = True
                    return {"status": "verify_code_blocked"}
                return {"status": "need_verifycode"}
            qr.verified = True
        if qr.redirect and redirect_host is not None:
            return {"status": "scaned_but_redirect", "redirect_host": redirect_host}
        if qr.confirmed:
            status = {k: v for k, v in qr.confirmed.items() if k != "wechat_user"}
            return {"status": "confirmed", **status}
        return {"status": "scaned"}

    # --- bots ------------------------------------------------------------------------------
    def bot_for(self, token: str | None) -> Bot | None:
        """The live bot of a token (None: unknown, replaced or expired: answer -14)."""
        bot = self.bots.get(token or "")
        return None if bot is None or bot.expired else bot

    def linked(self, wechat_user: str) -> Bot:
        try:
            return self.current[wechat_user]
        except KeyError:
            raise LookupError(f"{wechat_user} has not linked a bot") from None

    def expire_session(self, wechat_user: str) -> None:
        self.linked(wechat_user).expired = True
        self.on_change()

    def rate_limit(self, wechat_user: str, seconds: float) -> None:
        self.rate_limited[wechat_user] = self.now() + seconds

    def user_send(self, wechat_user: str, text: str | None, items: list | None) -> dict:
        """The user writes to their bot: a new message with a new context token."""
        if items is None:
            if text is None:
                raise ValueError("user_send needs text or items")
            items = [{"type": 1, "text_item": {"text": text}}]
        bot = self.linked(wechat_user)
        now = self.now()
        msg = {
            "seq": len(bot.messages) + 1,
            "message_id": self.next_message_id,
            "from_user_id": bot.user_id,
            "to_user_id": bot.bot_id,
            "client_id": f"wx-{secrets.token_hex(8)}",
            "create_time_ms": int(now * 1000),
            "session_id": f"{bot.bot_id}#{bot.user_id}",
            "message_type": 1,
            "message_state": 2,
            "item_list": items,
            "context_token": secrets.token_urlsafe(24),
        }
        self.next_message_id += 1
        bot.messages.append(msg)
        bot.context_token, bot.last_inbound, bot.replies = msg["context_token"], now, 0
        self.on_change()
        return dict(msg)

    def updates_after(self, bot: Bot, cursor: str) -> tuple[list[dict], str]:
        """Every message after ``cursor`` and the cursor that covers them."""
        seq = decode_cursor(cursor, bot.bot_id)
        msgs = [m for m in bot.messages if m["seq"] > seq]
        return msgs, encode_cursor(bot.bot_id, msgs[-1]["seq"] if msgs else seq)

    # --- sending ---------------------------------------------------------------------------
    def _record(self, bot: Bot | None, outcome: str, msg: dict, **extra: Any) -> None:
        items = msg.get("item_list") or []
        texts = [i["text_item"]["text"] for i in items if i.get("type") == 1]
        self.sends.append(
            {
                "outcome": outcome,
                "to": bot.wechat_user if bot else None,
                "to_user_id": msg.get("to_user_id"),
                "text": "\n".join(texts) if texts else None,
                "items": items,
                "context_token": msg.get("context_token"),
                "client_id": msg.get("client_id"),
                "at": self.now(),
                **extra,
            }
        )
        self.on_change()

    def send(self, bot: Bot, msg: dict[str, Any]) -> dict[str, Any]:
        """A validated sendmessage: the answer, and the send recorded by its outcome."""
        user, now = bot.wechat_user, self.now()
        if msg["to_user_id"] != bot.user_id:
            return self._refuse(bot, msg, -1, "to_user_id is not a user of this bot")
        if self.rate_limited.get(user, 0) > now:
            return self._refuse(bot, msg, -2, RATE_LIMITED)
        if bot.last_inbound is None or now - bot.last_inbound > self.window:
            return self._refuse(bot, msg, -2, "reply window closed: the user has not written")
        if bot.replies >= self.max_replies:
            return self._refuse(bot, msg, -2, "reply quota of the user's last message used up")
        for item in msg["item_list"]:
            if problem := self.media_problem(bot, item):
                return self._refuse(bot, msg, -1, problem)
        token = msg.get("context_token")
        if not token or token != bot.context_token:
            self._record(bot, "invisible", msg)
            return {}
        bot.replies += 1
        self._record(bot, "sent", msg)
        return {}

    def _refuse(self, bot: Bot | None, msg: dict, ret: int, errmsg: str) -> dict[str, Any]:
        self._record(bot, "rejected", msg, ret=ret, errmsg=errmsg)
        return {"ret": ret, "errmsg": errmsg}

    def refuse_expired(self, token: str | None, msg: dict) -> dict[str, Any]:
        bot = self.bots.get(token or "")
        self._record(bot, "rejected", msg, ret=-14, errmsg=SESSION_TIMEOUT["errmsg"])
        return dict(SESSION_TIMEOUT)

    def media_problem(self, bot: Bot, item: dict[str, Any]) -> str | None:
        """Why the CDN reference of a media item is unusable (None: it is fine / no media)."""
        media = self.media_of(item)
        if media is None:
            return None
        upload = self.uploads.get(media.get("encrypt_query_param") or "")
        if upload is None or upload["bot_id"] != bot.bot_id:
            return "media not found: encrypt_query_param names no upload of this bot"
        try:
            plain = cdn.decrypt(upload["ciphertext"], cdn.media_key(media.get("aes_key")))
        except ValueError as exc:
            return f"media aes_key does not decrypt the upload: {exc}"
        size = item.get("file_item", {}).get("len")
        if size is not None and size != str(len(plain)):
            return f"file_item.len {size!r} is not the file's size {len(plain)}"
        return None

    @staticmethod
    def media_of(item: dict[str, Any]) -> dict[str, Any] | None:
        for key in ("image_item", "voice_item", "file_item", "video_item"):
            if key in item:
                return item[key].get("media") or {}
        return None

    def outcomes(self, outcome: str, wechat_user: str | None) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in s.items() if k != "outcome"}
            for s in self.sends
            if s["outcome"] == outcome and (wechat_user is None or s["to"] == wechat_user)
        ]
