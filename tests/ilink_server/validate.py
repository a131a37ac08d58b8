"""Request checks: headers and body shapes. A :class:`BadRequest` becomes HTTP 400."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

ITEM_KEYS = {1: "text_item", 2: "image_item", 3: "voice_item", 4: "file_item", 5: "video_item"}
HEX32 = re.compile(r"[0-9a-fA-F]{32}")


class BadRequest(Exception):
    """Malformed input: the server answers 400 ``{"ret": -1, "errmsg": <this>}``."""


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def check_uin(headers: Mapping[str, str]) -> None:
    """X-WECHAT-UIN: base64 of the decimal text of a uint32."""
    uin = headers.get("X-WECHAT-UIN")
    if not uin:
        raise BadRequest("X-WECHAT-UIN header missing")
    try:
        text = base64.b64decode(uin, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise BadRequest("X-WECHAT-UIN is not base64") from None
    if not text.isdigit() or int(text) >= 2**32 or str(int(text)) != text:
        raise BadRequest("X-WECHAT-UIN is not the base64 of a decimal uint32")


def bearer(headers: Mapping[str, str]) -> str | None:
    """The bot token, or None when the auth headers are missing or wrong (-14)."""
    if headers.get("AuthorizationType") != "ilink_bot_token":
        return None
    auth = headers.get("Authorization", "")
    token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
    return token or None


def check_api(headers: Mapping[str, str], body: dict[str, Any]) -> None:
    """What every bot API POST carries: JSON content type, a UIN, base_info.bot_agent."""
    if not headers.get("Content-Type", "").startswith("application/json"):
        raise BadRequest("Content-Type must be application/json")
    check_uin(headers)
    info = body.get("base_info")
    if not isinstance(info, dict):
        raise BadRequest("base_info missing")
    if not isinstance(info.get("bot_agent"), str) or not info["bot_agent"]:
        raise BadRequest("base_info.bot_agent missing")


def field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"{where}{name} missing or not a {getattr(kind, '__name__', kind)}")
    return value


def updates_request(body: dict[str, Any]) -> str:
    buf = body.get("get_updates_buf", "")
    if not isinstance(buf, str):
        raise BadRequest("get_updates_buf must be a string")
    return buf


def message(body: dict[str, Any]) -> dict[str, Any]:
    """The ``msg`` of a sendmessage, its shape checked."""
    msg = field(body, "msg", dict)
    field(msg, "to_user_id", str, "msg.")
    if msg.get("message_type") != 2:
        raise BadRequest("msg.message_type must be 2 (BOT)")
    token = msg.get("context_token")
    if token is not None and not isinstance(token, str):
        raise BadRequest("msg.context_token must be a string")
    items = msg.get("item_list")
    if not isinstance(items, list) or not items:
        raise BadRequest("msg.item_list missing or empty")
    for n, item in enumerate(items):
        where = f"msg.item_list[{n}]."
        if not isinstance(item, dict):
            raise BadRequest(f"{where[:-1]} is not an object")
        kind = item.get("type")
        if kind not in ITEM_KEYS:
            raise BadRequest(f"{where}type {kind!r} is not a known item type")
        content = field(item, ITEM_KEYS[kind], dict, where)
        if kind == 1:
            field(content, "text", str, f"{where}text_item.")
            if not content["text"]:
                raise BadRequest(f"{where}text_item.text is empty")
            continue
        media = field(content, "media", dict, f"{where}{ITEM_KEYS[kind]}.")
        field(media, "encrypt_query_param", str, f"{where}{ITEM_KEYS[kind]}.media.")
        field(media, "aes_key", str, f"{where}{ITEM_KEYS[kind]}.media.")
        if kind == 4:
            field(content, "file_name", str, f"{where}file_item.")
    return msg


def upload_request(body: dict[str, Any]) -> dict[str, Any]:
    """A getuploadurl body, its fields checked."""
    req = {
        "filekey": field(body, "filekey", str),
        "media_type": field(body, "media_type", int),
        "to_user_id": field(body, "to_user_id", str),
        "rawsize": field(body, "rawsize", int),
        "rawfilemd5": field(body, "rawfilemd5", str),
        "filesize": field(body, "filesize", int),
        "aeskey": field(body, "aeskey", str),
    }
    if req["media_type"] not in (1, 2, 3, 4):
        raise BadRequest("media_type must be 1, 2, 3 or 4")
    if not req["filekey"]:
        raise BadRequest("filekey is empty")
    if not HEX32.fullmatch(req["aeskey"]) or not HEX32.fullmatch(req["rawfilemd5"]):
        raise BadRequest("aeskey and rawfilemd5 must be 32 hex digits")
    if req["media_type"] in (1, 2) and body.get("no_need_thumb") is not True:
        for name in ("thumb_rawsize", "thumb_rawfilemd5", "thumb_filesize"):
            if name not in body:
                raise BadRequest(f"{name} missing (or send no_need_thumb: true)")
    return req
