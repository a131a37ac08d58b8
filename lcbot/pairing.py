"""Pairing codes: how a WeChat contact proves it is a configured user.

``lcbot user add alice`` (without ``--wxid``) or ``lcbot user invite alice`` issues a
one-time code: 10 random characters from an alphabet without look-alikes, valid 24 h,
stored only as an HMAC-SHA256 keyed with a per-install secret (``pairing.key``, 0600,
beside the database, not in it). Alice sends ``bind CODE`` to the bot; the bot writes her
contact id into lcbot.toml (locked, atomic save) and confirms. Every failure gets the same
refusal; after 5 wrong codes from one contact within an hour (counted in the database, so
a restart does not reset it), its bind attempts are ignored for the rest of that hour.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from lcbot.db import file_of, transaction
from lcbot.db import pairing as sql

log = logging.getLogger("lcbot.pairing")

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L look-alikes
LENGTH = 10
VALID_SECONDS = 24 * 3600
MAX_FAILURES = 5
WINDOW = 3600.0
REFUSAL = "invalid or expired code"
KEY_FILE = "pairing.key"


def secret(db: sqlite3.Connection) -> bytes:
    """The per-install key of the code hashes: ``pairing.key`` beside the database (0600,
    made on first use), never in it — a copy of the database alone cannot test guesses."""
    key_path = file_of(db).with_name(KEY_FILE)
    try:
        return bytes.fromhex(key_path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return bytes.fromhex(key_path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key


def _hash(db: sqlite3.Connection, code: str) -> str:
    return hmac.new(secret(db), code.encode(), hashlib.sha256).hexdigest()


def normalize(text: str) -> str:
    """What the user typed → the code as stored (case, spaces, dashes, quotes do not matter)."""
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())


def display(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"


def issue(db: sqlite3.Connection, user: str, now: float | None = None) -> str:
    """A fresh code for ``user`` (earlier unused codes of that user stop working)."""
    now = time.time() if now is None else now
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    code_hash = _hash(db, code)
    with transaction(db):
        sql.replace_code(db, user, code_hash, now + VALID_SECONDS, now)
    return display(code)


def revoke(db: sqlite3.Connection, user: str) -> None:
    """Forget every code of ``user`` (any case): a removed user's code binds nobody."""
    with transaction(db):
        sql.revoke(db, user)


def redeem(db: sqlite3.Connection, text: str, now: float | None = None) -> str | None:
    """The user a valid code belongs to (the code is used up), or None."""
    now = time.time() if now is None else now
    code = normalize(text)
    if len(code) != LENGTH or any(ch not in ALPHABET for ch in code):
        return None
    code_hash = _hash(db, code)
    with transaction(db):
        return sql.use_code(db, code_hash, now)


BLOCKED = object()  # what ``attempt`` returns for a contact sending too many wrong codes


def attempt(db: sqlite3.Connection, contact: str, text: str, now: float | None = None) -> Any:
    """One ``bind CODE`` from ``contact``: the user bound, None for a wrong code (counted, in
    the database: a restart does not reset the count), or ``BLOCKED`` after ``MAX_FAILURES``
    wrong codes within ``WINDOW``. One transaction: concurrent attempts cannot slip past."""
    now = time.time() if now is None else now
    code = normalize(text)
    code_hash = _hash(db, code) if len(code) == LENGTH else None
    with transaction(db):
        if sql.failures_since(db, contact, now - WINDOW) >= MAX_FAILURES:
            return BLOCKED
        user = None
        if code_hash is not None and all(ch in ALPHABET for ch in code):
            user = sql.use_code(db, code_hash, now)
        if user is None:
            sql.record_failure(db, contact, now, now - WINDOW)
        return user


def code_in(greeting: str) -> str | None:
    """The code-shaped word of a friend request's greeting (``bind ABCDE-FGHJK``,
    ``abcde fghjk``, …), or None when it holds nothing like a code. Of several, the one
    after "bind", else one written like a code (a dash or a digit), else the first."""
    import re

    chars = f"[{ALPHABET}{ALPHABET.lower()}]"
    shape = rf"(?<![0-9A-Za-z]){chars}{{5}}[- ]?{chars}{{5}}(?![0-9A-Za-z])"
    after_bind = re.search(rf"\bbind\s+({shape})", greeting, re.IGNORECASE)
    if after_bind:
        return after_bind.group(1)
    found = re.findall(shape, greeting)
    coded = [c for c in found if "-" in c or any(ch.isdigit() for ch in c)]
    return (coded or found or [None])[0]


class Binder:
    """Binds contacts that are not (yet) users: ``bind CODE`` messages and friend requests
    whose greeting holds a code. Both count against the same wrong-code throttle."""

    def __init__(
        self,
        attempt: Callable[[str, str], Any],
        bind: Callable[[str, str], Any],
        put: Callable[..., None],
    ) -> None:
        self.attempt = attempt  # (contact, code text) → user, None or BLOCKED (blocking)
        self.bind = bind  # (user name, contact id) → the bound User (blocking)
        self.put = put

    async def handle(self, msg: Any) -> bool:
        """True if ``msg`` was a bind attempt (answered or ignored), False otherwise."""
        from lcbot.commands import parse

        parsed = parse(msg.text)
        if parsed is None or parsed[0] != "bind":
            return False
        contact = msg.sender_id
        bound = await self._redeem(contact, msg.sender_name, parsed[1] or "")
        if bound is None:
            self.put(f"contact:{contact}", REFUSAL)
        return True

    async def admit(self, contact: str, name: str, greeting: str) -> str | None:
        """A friend request from ``contact``: the user it is now bound to, or None when its
        greeting holds no valid code (then the request is to be ignored, unanswered)."""
        code = code_in(greeting)
        if code is None:
            return None
        bound = await self._redeem(contact, name, code)
        return bound if isinstance(bound, str) else None

    async def _redeem(self, contact: str, name: str, code: str) -> Any:
        """Bind ``contact`` with ``code``: the user's name, None (logged) for a refusal, or
        ``BLOCKED`` for a contact whose attempts are ignored (no answer at all)."""
        try:
            user = await asyncio.to_thread(self.attempt, contact, code)
        except Exception as exc:  # the database is locked for too long, …
            log.error("could not check a pairing code from %r: %s", contact, exc)
            return None
        if user is BLOCKED:
            log.warning("bind attempt from %r ignored: too many wrong codes", contact)
            return BLOCKED
        if user is None:
            log.warning("wrong or expired pairing code from contact %r", contact)
            return None
        try:
            bound = await asyncio.to_thread(self.bind, user, contact)
        except Exception as exc:  # user removed meanwhile, contact already bound, bad file
            log.error("could not bind contact %r to user %r: %s", contact, user, exc)
            return None
        log.warning("contact %r (%s) is now user %s", contact, name, bound.name)
        self.put(bound.name, f"bound: you are {bound.name} ({bound.pri.label}); send help")
        return bound.name
