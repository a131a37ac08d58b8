"""Pairing codes: how a WeChat contact proves it is a configured user.

``lcbot user add alice`` (without ``--wxid``) or ``lcbot user invite alice`` issues a
one-time code: 10 random characters from an alphabet without look-alikes, valid 24 h,
stored only as a SHA-256 hash in the database. Alice sends ``bind CODE`` to the bot; the
bot writes her contact id into lcbot.toml (locked, atomic save) and confirms. Every
failure gets the same refusal; after 5 wrong codes from one contact within an hour, its
messages are ignored for the rest of that hour.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from lcbot.db import pairing as sql
from lcbot.db import transaction

log = logging.getLogger("lcbot.pairing")

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L look-alikes
LENGTH = 10
VALID_SECONDS = 24 * 3600
MAX_FAILURES = 5
WINDOW = 3600.0
REFUSAL = "invalid or expired code"


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalize(text: str) -> str:
    """What the user typed → the code as stored (case, spaces, dashes, quotes do not matter)."""
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())


def display(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"


def issue(db: sqlite3.Connection, user: str, now: float | None = None) -> str:
    """A fresh code for ``user`` (earlier unused codes of that user stop working)."""
    now = time.time() if now is None else now
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    with transaction(db):
        sql.replace_code(db, user, _hash(code), now + VALID_SECONDS, now)
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
    with transaction(db):
        return sql.use_code(db, _hash(code), now)


class Throttle:
    """Counts wrong codes per contact; ``blocked`` after MAX_FAILURES within WINDOW."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.failures: dict[str, list[float]] = {}

    def _recent(self, contact: str) -> list[float]:
        now = self.clock()
        times = [t for t in self.failures.get(contact, []) if now - t < WINDOW]
        self.failures[contact] = times
        return times

    def blocked(self, contact: str) -> bool:
        return len(self._recent(contact)) >= MAX_FAILURES

    def failed(self, contact: str) -> None:
        self._recent(contact).append(self.clock())

    def attempt(self, contact: str) -> bool:
        """Count an attempt as failed before checking it (concurrent attempts cannot slip
        past the limit); False when the contact is blocked. ``succeeded`` takes it back."""
        if self.blocked(contact):
            return False
        self.failed(contact)
        return True

    def succeeded(self, contact: str) -> None:
        times = self.failures.get(contact)
        if times:
            times.pop()


class Binder:
    """Answers ``bind CODE`` from contacts that are not (yet) users."""

    def __init__(
        self,
        redeem: Callable[[str], str | None],
        bind: Callable[[str, str], Any],
        put: Callable[..., None],
    ) -> None:
        self.redeem = redeem  # code text → user name (blocking: run in a worker thread)
        self.bind = bind  # (user name, contact id) → the bound User (blocking)
        self.put = put
        self.throttle = Throttle()

    async def handle(self, msg: Any) -> bool:
        """True if ``msg`` was a bind attempt (answered or ignored), False otherwise."""
        from lcbot.commands import parse

        parsed = parse(msg.text)
        if parsed is None or parsed[0] != "bind":
            return False
        contact = msg.sender_id
        reply_to = f"contact:{contact}"
        if not self.throttle.attempt(contact):
            log.warning("bind attempt from %r ignored: too many wrong codes", contact)
            return True
        try:
            user = await asyncio.to_thread(self.redeem, parsed[1] or "")
        except Exception as exc:  # the database is locked for too long, …
            log.error("could not check a pairing code from %r: %s", contact, exc)
            self.put(reply_to, REFUSAL)
            return True
        if user is None:
            log.warning("wrong or expired pairing code from contact %r", contact)
            self.put(reply_to, REFUSAL)
            return True
        self.throttle.succeeded(contact)
        try:
            bound = await asyncio.to_thread(self.bind, user, contact)
        except Exception as exc:  # user removed meanwhile, contact already bound, bad file
            log.error("could not bind contact %r to user %r: %s", contact, user, exc)
            self.put(reply_to, REFUSAL)
            return True
        log.warning("contact %r (%s) is now user %s", contact, msg.sender_name, bound.name)
        self.put(bound.name, f"bound: you are {bound.name} ({bound.pri.label}); send help")
        return True
