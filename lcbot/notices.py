"""Durable notices from a transport (``Transport.notify``): to one user, or to every root
user (an expired link, a nudge to write)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from lcbot.users import Pri, User


def notifier(
    put: Callable[..., None], users: Callable[[], Iterable[User]]
) -> Callable[[str | None, str], None]:
    """``notify(user, text)``: queue ``text`` for ``user`` (None: each root user) through
    ``put`` (the outbox); ``users`` gives the current users."""

    def notify(user: str | None, text: str) -> None:
        names = [user] if user else [u.name for u in users() if u.pri is Pri.ROOT]
        for name in names:
            put(name, text, "notice")

    return notify
