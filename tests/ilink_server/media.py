"""Media sends: getuploadurl's bookkeeping, the CDN upload, and what the user received."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from urllib.parse import quote

from tests.ilink_server import cdn
from tests.ilink_server.state import Bot, State


def upload_url(
    state: State, bot: Bot, req: dict[str, Any], cdn_base_url: str, full_url: bool
) -> dict[str, Any]:
    """Answer a validated getuploadurl: an ``upload_param`` for one CDN upload."""
    if req["to_user_id"] != bot.user_id:
        return {"ret": -1, "errmsg": "to_user_id is not a user of this bot"}
    if req["filesize"] != cdn.padded_size(req["rawsize"]):
        return {"ret": -1, "errmsg": "filesize is not the AES-128-ECB size of rawsize"}
    param = secrets.token_urlsafe(32)
    state.pending_uploads[param] = {**req, "bot_id": bot.bot_id, "user": bot.wechat_user}
    answer: dict[str, Any] = {"upload_param": param}
    if full_url:
        answer["upload_full_url"] = (
            f"{cdn_base_url}/upload?encrypted_query_param={quote(param, safe='')}"
            f"&filekey={quote(req['filekey'], safe='')}"
        )
    return answer


def cdn_upload(
    state: State, param: str | None, filekey: str | None, data: bytes
) -> tuple[int, dict[str, str]]:
    """Store one ciphertext: (HTTP status, headers) — ``x-encrypted-param`` on success."""
    if state.cdn_failures:
        status = state.cdn_failures.pop(0)
        return status, {"x-error-message": f"injected CDN failure {status}"}
    pending = state.pending_uploads.get(param or "")
    if pending is None:
        return 400, {"x-error-message": "encrypted_query_param names no getuploadurl"}
    if filekey != pending["filekey"]:
        return 400, {"x-error-message": "filekey does not match getuploadurl"}
    if len(data) != pending["filesize"]:
        return 400, {"x-error-message": f"body is {len(data)} bytes, not filesize"}
    try:
        plain = cdn.decrypt(data, cdn.hex_key(pending["aeskey"]))
    except ValueError:
        return 400, {"x-error-message": "body is not encrypted with the aeskey"}
    if (
        len(plain) != pending["rawsize"]
        or hashlib.md5(plain).hexdigest() != pending["rawfilemd5"].lower()
    ):
        return 400, {"x-error-message": "plaintext does not match rawsize/rawfilemd5"}
    done = pending.get("download")
    if done is not None:  # a retry: same bytes, same answer
        if state.uploads[done]["ciphertext"] != data:
            return 400, {"x-error-message": "upload_param already used"}
        return 200, {"x-encrypted-param": done}
    download = secrets.token_urlsafe(48)
    pending["download"] = download
    state.uploads[download] = {
        "bot_id": pending["bot_id"],
        "user": pending["user"],
        "filekey": filekey,
        "media_type": pending["media_type"],
        "ciphertext": data,
    }
    state.on_change()
    return 200, {"x-encrypted-param": download}


def received(state: State, wechat_user: str | None) -> list[dict[str, Any]]:
    """Media items of accepted sends, decrypted with the key that sendmessage carried."""
    found = []
    for send in state.sends:
        if send["outcome"] not in ("sent", "invisible"):
            continue
        if wechat_user is not None and send["to"] != wechat_user:
            continue
        for item in send["items"]:
            media = State.media_of(item)
            if media is None:
                continue
            upload = state.uploads[media["encrypt_query_param"]]
            data = cdn.decrypt(upload["ciphertext"], cdn.media_key(media["aes_key"]))
            found.append(
                {
                    "name": item.get("file_item", {}).get("file_name"),
                    "data": data,
                    "media_type": upload["media_type"],
                    "item_type": item["type"],
                    "to": send["to"],
                    "visible": send["outcome"] == "sent",
                    "at": send["at"],
                }
            )
    return found
