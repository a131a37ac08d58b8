"""The iLink bot API client (aiohttp): QR linking, long-poll updates, text and file sends.

Every POST carries the headers of the published protocol (``AuthorizationType``, a fresh
random ``X-WECHAT-UIN``, ``Authorization: Bearer`` once a token is known, the app id and
client version) and a ``base_info`` naming lcbot as the bot agent. A nonzero ``ret`` or
``errcode``, an HTTP status ≥ 400, a connection failure or a timeout raise ``ILinkError``
(classified: ``rate_limited``, ``refused``, ``session_expired``), whose text never holds
the token — except that a long poll which times out on the client is an empty answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
from pathlib import Path
from typing import Any

import aiohttp

from lcbot import __version__
from lcbot.ilink import cdn
from lcbot.ilink.errors import ILinkError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CDN_BASE_URL",
    "ILinkAPI",
    "ILinkError",
    "inbound_text",
    "message_key",
]

log = logging.getLogger("lcbot.ilink")

DEFAULT_BASE_URL = "https://ilinkai.weixin.qq.com"
DEFAULT_CDN_BASE_URL = cdn.DEFAULT_CDN_BASE_URL
BOT_TYPE = "3"  # the bot type of the ClawBot channel's QR codes
BOT_AGENT = f"lcbot/{__version__}"
USER_MESSAGE, BOT_MESSAGE = 1, 2
FINISHED = 2  # message_state: complete
TEXT_ITEM, VOICE_ITEM = 1, 3
ERRMSG_MAX = 200  # characters of a server's error text kept in an ILinkError


def client_version(version: str = __version__) -> int:
    """``iLink-App-ClientVersion``: 0x00MMNNPP of ``major.minor.patch`` ("1.0.11" → 65547)."""
    numbers = []
    for part in version.split(".")[:3]:
        digits = re.match(r"\d+", part)
        numbers.append(int(digits.group()) & 0xFF if digits else 0)
    major, minor, patch = [*numbers, 0, 0, 0][:3]
    return (major << 16) | (minor << 8) | patch


def random_uin() -> str:
    """``X-WECHAT-UIN``: base64 of the decimal text of a random uint32."""
    return base64.b64encode(str(secrets.randbits(32)).encode()).decode()


def base_info() -> dict[str, str]:
    return {"channel_version": __version__, "bot_agent": BOT_AGENT}


class ILinkAPI:
    """One bot's view of the service: ``token`` is its bot token (None while linking)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str | None = None,
        cdn_base_url: str = DEFAULT_CDN_BASE_URL,
        timeout: float = 15.0,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.cdn_base_url = cdn_base_url.rstrip("/")
        self.timeout = timeout

    # --- requests ---------------------------------------------------------------------------

    def common_headers(self) -> dict[str, str]:
        return {"iLink-App-Id": "", "iLink-App-ClientVersion": str(client_version())}

    def headers(self) -> dict[str, str]:
        """The headers of one POST (a new ``X-WECHAT-UIN`` each time)."""
        headers = {
            "Content-Type": "application/json",
            "AuthorizationType": "ilink_bot_token",
            "X-WECHAT-UIN": random_uin(),
            **self.common_headers(),
        }
        if self.token and self.token.strip():
            headers["Authorization"] = f"Bearer {self.token.strip()}"
        return headers

    def url(self, endpoint: str) -> str:
        return f"{self.base_url}/ilink/bot/{endpoint}"

    async def post(
        self,
        endpoint: str,
        body: dict[str, Any],
        timeout: float | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST ``body`` (with ``base_info``) to ``ilink/bot/<endpoint>``; the checked answer."""
        data = json.dumps({**body, "base_info": base_info()}, ensure_ascii=False).encode()
        return await self._request(
            "POST", endpoint, timeout, params=params, data=data, headers=self.headers()
        )

    async def get(
        self, endpoint: str, params: dict[str, str], timeout: float | None = None
    ) -> dict[str, Any]:
        return await self._request(
            "GET", endpoint, timeout, params=params, headers=self.common_headers()
        )

    async def _request(
        self, method: str, endpoint: str, timeout: float | None, **kwargs: Any
    ) -> dict[str, Any]:
        call = endpoint.split("?")[0]
        limit = aiohttp.ClientTimeout(total=self.timeout if timeout is None else timeout)
        try:
            async with self.session.request(
                method, self.url(endpoint), timeout=limit, **kwargs
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (asyncio.TimeoutError, TimeoutError):
            raise
        except aiohttp.ClientError as exc:
            raise ILinkError(call, errmsg=self._clean(f"connection failed: {exc}")) from None
        log.debug("%s %s: HTTP %d, %d bytes", method, call, status, len(raw))
        answer = self._decode(raw)
        if status >= 400:
            errmsg = answer.get("errmsg") if isinstance(answer, dict) else None
            text = errmsg if isinstance(errmsg, str) else raw.decode("utf-8", "replace")
            raise ILinkError(call, status=status, errmsg=self._clean(text))
        if not isinstance(answer, dict):
            raise ILinkError(call, errmsg="the answer is not a JSON object")
        self.check(call, answer)
        return answer

    @staticmethod
    def _decode(raw: bytes) -> Any:
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def check(self, call: str, answer: dict[str, Any]) -> None:
        """Raise ILinkError when ``answer`` holds a nonzero ``ret`` or ``errcode``."""
        ret, errcode = _number(answer.get("ret")), _number(answer.get("errcode"))
        if ret or errcode:
            errmsg = answer.get("errmsg")
            raise ILinkError(
                call,
                ret=ret,
                errcode=errcode,
                errmsg=self._clean(errmsg if isinstance(errmsg, str) else ""),
            )

    def _clean(self, text: str) -> str:
        """One line of at most ERRMSG_MAX characters, the bot token masked."""
        if self.token:
            text = text.replace(self.token, "***")
        text = " ".join(text.split())
        return text if len(text) <= ERRMSG_MAX else text[: ERRMSG_MAX - 1] + "…"

    # --- linking ----------------------------------------------------------------------------

    async def get_bot_qrcode(self) -> dict[str, Any]:
        """A new QR code: ``{"qrcode": id, "qrcode_img_content": the URL to show}``."""
        answer = await self._call(
            "get_bot_qrcode", {"local_token_list": []}, params={"bot_type": BOT_TYPE}
        )
        for key in ("qrcode", "qrcode_img_content"):
            if not isinstance(answer.get(key), str) or not answer[key]:
                raise ILinkError("get_bot_qrcode", errmsg=f"the answer has no {key}")
        return answer

    async def get_qrcode_status(
        self, qrcode: str, verify_code: str | None = None, timeout: float = 35.0
    ) -> dict[str, Any]:
        """Long-poll the code's status; ``{"status": "wait"}`` when the poll times out."""
        params = {"qrcode": qrcode}
        if verify_code:
            params["verify_code"] = verify_code
        try:
            answer = await self.get("get_qrcode_status", params, timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return {"status": "wait"}
        if not isinstance(answer.get("status"), str):
            raise ILinkError("get_qrcode_status", errmsg="the answer has no status")
        return answer

    # --- messages ---------------------------------------------------------------------------

    async def get_updates(self, cursor: str, timeout: float = 35.0) -> dict[str, Any]:
        """Long-poll new messages after ``cursor``: ``{"ret", "msgs", "get_updates_buf",
        …}``. A poll that times out on the client is ``{"ret": 0, "msgs": [],
        "get_updates_buf": cursor}``; an answer without a cursor keeps ``cursor``."""
        try:
            answer = await self.post("getupdates", {"get_updates_buf": cursor}, timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return {"ret": 0, "msgs": [], "get_updates_buf": cursor}
        if not isinstance(answer.get("msgs"), list):
            answer["msgs"] = []
        if not isinstance(answer.get("get_updates_buf"), str):
            answer["get_updates_buf"] = cursor
        return answer

    async def send_message(
        self, to_user_id: str, context_token: str, items: list[dict[str, Any]]
    ) -> None:
        """One ``sendmessage`` with ``items``; ``context_token`` must be the newest one."""
        if not context_token:
            raise ValueError("an iLink message needs the context token of the conversation")
        msg = {
            "from_user_id": "",
            "to_user_id": to_user_id,
            "client_id": f"lcbot-{secrets.token_hex(8)}",
            "message_type": BOT_MESSAGE,
            "message_state": FINISHED,
            "item_list": items,
            "context_token": context_token,
        }
        await self._call("sendmessage", {"msg": msg})

    async def send_text(self, to_user_id: str, context_token: str, text: str) -> None:
        await self.send_message(to_user_id, context_token, [cdn.text_item(text)])

    async def send_file(self, to_user_id: str, context_token: str, path: Path, name: str) -> None:
        """Upload ``path`` through the CDN (encrypted) and send it: an image item for image
        extensions of ``name``, a file item named ``name`` otherwise."""
        data = await asyncio.to_thread(Path(path).read_bytes)
        kind = cdn.media_type(name)
        uploaded = await cdn.upload(
            self.session,
            lambda body: self._call("getuploadurl", body),
            self.cdn_base_url,
            to_user_id,
            data,
            kind,
        )
        await self.send_message(to_user_id, context_token, [cdn.media_item(uploaded, kind, name)])

    async def _call(
        self, endpoint: str, body: dict[str, Any], params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A POST whose timeout is a failure too (QR codes, sends, upload URLs)."""
        try:
            return await self.post(endpoint, body, params=params)
        except (asyncio.TimeoutError, TimeoutError):
            raise ILinkError(endpoint, errmsg=f"no answer within {self.timeout:g} s") from None


def _number(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def inbound_text(msg: dict[str, Any]) -> str | None:
    """The text of a user's message: its text items (and voice transcripts), one per line;
    None for a bot's message or one without text (to be ignored)."""
    if not isinstance(msg, dict) or msg.get("message_type", USER_MESSAGE) != USER_MESSAGE:
        return None  # the bot's own messages (2); a message without a type is a user's
    items = msg.get("item_list")
    parts: list[str] = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == TEXT_ITEM:
            inner = item.get("text_item")
        elif item.get("type") == VOICE_ITEM:
            inner = item.get("voice_item")
        else:
            continue
        text = inner.get("text") if isinstance(inner, dict) else None
        if isinstance(text, str) and text.strip():
            parts.append(text)
    return "\n".join(parts) if parts else None


def message_key(msg: dict[str, Any]) -> str | None:
    """A message's identity for de-duplication: its ``message_id``, else ``seq``, else
    ``client_id``; None when it has none."""
    if not isinstance(msg, dict):
        return None
    for field, prefix in (("message_id", ""), ("seq", "seq:"), ("client_id", "client:")):
        value = msg.get(field)
        if isinstance(value, bool) or value in (None, ""):
            continue
        if isinstance(value, int | str):
            return f"{prefix}{value}"
    return None
