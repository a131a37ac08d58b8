"""Media through the iLink CDN: AES-128-ECB (PKCS#7), ``getuploadurl``, upload, media items.

A file is encrypted with a fresh 16-byte key, announced with ``getuploadurl`` (sizes, MD5,
the key as hex), posted to the CDN (server errors are tried up to three times, client
errors fail at once), and the CDN's ``x-encrypted-param`` answer goes into the image or
file item of the ``sendmessage`` that follows. The ``cryptography`` package is imported on
first use.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from lcbot.ilink.errors import ILinkError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("lcbot.ilink")

DEFAULT_CDN_BASE_URL = "https://novac2c.cdn.weixin.qq.com/c2c"
IMAGE, FILE = 1, 3  # getuploadurl media_type
IMAGE_ITEM, FILE_ITEM = 2, 4  # message item types
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})
UPLOAD_TRIES = 3
BLOCK = 16

PostJSON = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _cipher(key: bytes):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    return Cipher(algorithms.AES(key), modes.ECB())


def encrypt(data: bytes, key: bytes) -> bytes:
    """AES-128-ECB with PKCS#7 padding (what the CDN stores)."""
    from cryptography.hazmat.primitives import padding

    padder = padding.PKCS7(BLOCK * 8).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = _cipher(key).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def decrypt(data: bytes, key: bytes) -> bytes:
    """The inverse of ``encrypt``; ValueError for a wrong key or a damaged text."""
    from cryptography.hazmat.primitives import padding

    decryptor = _cipher(key).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(BLOCK * 8).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def padded_size(size: int) -> int:
    """The ciphertext size of ``size`` plaintext bytes."""
    return (size + 1 + BLOCK - 1) // BLOCK * BLOCK


def media_type(name: str) -> int:
    """IMAGE for the image extensions, FILE for everything else."""
    return IMAGE if PurePath(name).suffix.lower() in IMAGE_EXTENSIONS else FILE


def text_item(text: str) -> dict[str, Any]:
    return {"type": 1, "text_item": {"text": text}}


@dataclass(frozen=True)
class Uploaded:
    """A file on the CDN: what the media item of a message refers to."""

    download_param: str  # the CDN's x-encrypted-param
    aeskey_hex: str
    size: int  # plaintext bytes
    cipher_size: int


def upload_url(cdn_base_url: str, upload_param: str, filekey: str) -> str:
    return (
        f"{cdn_base_url.rstrip('/')}/upload?encrypted_query_param={quote(upload_param, safe='')}"
        f"&filekey={quote(filekey, safe='')}"
    )


async def upload(
    session: aiohttp.ClientSession,
    get_upload_url: PostJSON,
    cdn_base_url: str,
    to_user_id: str,
    data: bytes,
    kind: int,
) -> Uploaded:
    """Encrypt ``data``, ask for an upload URL (``get_upload_url`` posts the body to
    ``getuploadurl``) and upload it; ILinkError when any step fails."""
    key = secrets.token_bytes(16)
    filekey = secrets.token_hex(16)
    ciphertext = await asyncio.to_thread(encrypt, data, key)
    answer = await get_upload_url(
        {
            "filekey": filekey,
            "media_type": kind,
            "to_user_id": to_user_id,
            "rawsize": len(data),
            "rawfilemd5": hashlib.md5(data).hexdigest(),
            "filesize": padded_size(len(data)),
            "no_need_thumb": True,
            "aeskey": key.hex(),
        }
    )
    full = answer.get("upload_full_url")
    param = answer.get("upload_param")
    if isinstance(full, str) and full.strip():
        target = full.strip()
    elif isinstance(param, str) and param:
        target = upload_url(cdn_base_url, param, filekey)
    else:
        raise ILinkError("getuploadurl", errmsg="the answer has no upload URL")
    download = await post_ciphertext(session, target, ciphertext)
    return Uploaded(download, key.hex(), len(data), len(ciphertext))


async def post_ciphertext(
    session: aiohttp.ClientSession, url: str, ciphertext: bytes, timeout: float = 60.0
) -> str:
    """POST to the CDN; its ``x-encrypted-param``. Server errors and lost connections are
    tried ``UPLOAD_TRIES`` times, a client error (4xx) fails at once."""
    import aiohttp

    last: ILinkError | None = None
    for attempt in range(1, UPLOAD_TRIES + 1):
        try:
            async with session.post(
                url,
                data=ciphertext,
                headers={"Content-Type": "application/octet-stream"},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                status = resp.status
                message = resp.headers.get("x-error-message") or ""
                param = resp.headers.get("x-encrypted-param")
                if 400 <= status < 500:
                    message = message or (await resp.text(errors="replace"))[:200]
                    raise ILinkError("cdn upload", status=status, errmsg=message.strip())
        except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError) as exc:
            last = ILinkError("cdn upload", errmsg=f"connection failed: {exc or 'timeout'}")
        else:
            if status == 200 and param:
                return param
            last = ILinkError(
                "cdn upload",
                status=status,
                errmsg=message or ("" if status != 200 else "no x-encrypted-param header"),
            )
        log.warning("CDN upload attempt %d of %d failed: %s", attempt, UPLOAD_TRIES, last)
    assert last is not None
    raise last


def media_item(uploaded: Uploaded, kind: int, name: str) -> dict[str, Any]:
    """The ``sendmessage`` item for an uploaded file: an image item or a file item."""
    media = {
        "encrypt_query_param": uploaded.download_param,
        # the protocol's quirk: base64 of the hex text of the key, not of the key bytes
        "aes_key": base64.b64encode(uploaded.aeskey_hex.encode("ascii")).decode(),
        "encrypt_type": 1,
    }
    if kind == IMAGE:
        return {
            "type": IMAGE_ITEM,
            "image_item": {"media": media, "mid_size": uploaded.cipher_size},
        }
    return {
        "type": FILE_ITEM,
        "file_item": {"media": media, "file_name": name, "len": str(uploaded.size)},
    }
