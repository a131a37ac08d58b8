"""AES-128-ECB (PKCS#7) as the WeChat CDN uses it, and the keys' wire forms."""

from __future__ import annotations

import base64
import binascii
import math

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def padded_size(rawsize: int) -> int:
    """Ciphertext size of ``rawsize`` plaintext bytes (PKCS#7 always adds 1..16 bytes)."""
    return math.ceil((rawsize + 1) / 16) * 16


def encrypt(plaintext: bytes, key: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def decrypt(ciphertext: bytes, key: bytes) -> bytes:
    """The plaintext; ValueError when ``key`` does not fit (bad size or padding)."""
    if len(key) != 16 or not ciphertext or len(ciphertext) % 16:
        raise ValueError("not AES-128-ECB ciphertext for this key")
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    data = dec.update(ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(data) + unpadder.finalize()


def hex_key(text: object) -> bytes:
    """A 16-byte key given as 32 hex digits (getuploadurl's ``aeskey``)."""
    if not isinstance(text, str) or len(text) != 32:
        raise ValueError("aeskey must be 32 hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError("aeskey must be 32 hex digits") from None


def media_key(text: object) -> bytes:
    """A CDNMedia ``aes_key``: base64 of the 32-hex-digit key text (or of the raw 16 bytes)."""
    if not isinstance(text, str):
        raise ValueError("aes_key missing")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("aes_key is not base64") from None
    if len(raw) == 16:
        return raw
    return hex_key(raw.decode("ascii", "replace"))
