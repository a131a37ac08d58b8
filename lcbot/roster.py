"""The roster: the users of a running bot, who a message is from, and where to reach them.

Users, and the group chats that receive alerts (``[[rooms]]``), come from lcbot.toml and
are re-read when the file changes (``lcbot user …`` in
another terminal reaches the running bot within a second). ``identity`` says how senders
are recognised: ``"id"`` by the WeChat contact id bound to a user (``wxid``), ``"name"`` by
the user name (the console; WeChat with the unsafe ``identity = "name"``), ``"ilink"`` by
the iLink user id a QR link recorded (``ilink``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from lcbot.asyncutil import background
from lcbot.errors import LcbotError
from lcbot.rooms import Room, remove_room, set_room
from lcbot.transports.base import Address, Incoming
from lcbot.users import Directory, User, find_user, parse_users

log = logging.getLogger("lcbot.roster")

WATCH = 0.5  # seconds between looks at lcbot.toml


class Roster:
    def __init__(
        self, users: list[User], identity: str, config_path: Path, rooms: list[Room] = ()
    ) -> None:
        self.directory = Directory(users)
        self.rooms: tuple[Room, ...] = tuple(rooms)  # group chats that receive alerts
        self._addresses: dict[str, Address | None] = {}  # recipient → address (this directory)
        self._reachable: list[User] | None = None
        self.identity = identity
        self.config_path = config_path
        self._seen = self._stamp()

    # --- who is who -------------------------------------------------------------------------

    def identify(self, msg: Incoming) -> User | None:
        """The user who sent ``msg``, or None for a stranger."""
        if msg.user is not None:  # vouched for by the transport (the account's owner)
            return self.directory.by_name(msg.user)
        if self.identity == "id":
            return self.directory.by_wxid(msg.sender_id)
        if self.identity == "ilink":
            return self.directory.by_ilink(msg.sender_id)
        return self.directory.by_name(msg.sender_name)

    def may_invite(self, contact: str, name: str) -> bool:
        """Whether a contact may add the bot to a group chat: root and admin users only."""
        user = self.directory.by_wxid(contact) if self.identity == "id" else None
        if user is None and self.identity == "name":
            user = self.directory.by_name(name)
        return user is not None and user.pri.label in ("root", "admin")

    def reachable(self, user: User) -> bool:
        """Whether messages to ``user`` can be delivered (by id: only once bound; by
        iLink: only once linked)."""
        if self.identity == "ilink":
            return bool(user.ilink)
        return self.identity == "name" or bool(user.wxid)

    def reachable_users(self) -> list[User]:
        """Every user messages can be delivered to (kept until the users change)."""
        if self._reachable is None:
            self._reachable = [u for u in self.directory if self.reachable(u)]
        return self._reachable

    def address(self, recipient: str) -> Address | None:
        """Where an outbox recipient is delivered now; None for an unknown or unbound user.

        Rows name users (not contact ids), so a message queued before a user was bound
        reaches them once they are.
        """
        try:
            return self._addresses[recipient]
        except KeyError:
            address = self._addresses[recipient] = self._address(recipient)
            return address

    def _address(self, recipient: str) -> Address | None:
        kind, _, rest = recipient.partition(":")
        if rest and kind in ("room", "contact"):
            return Address(kind, rest, recipient)
        user = self.directory.by_name(recipient)
        if user is None:
            return None
        if self.identity == "name":
            return Address("name", user.name, user.name)
        if self.identity == "ilink":
            return Address("contact", user.ilink, user.name) if user.ilink else None
        return Address("contact", user.wxid, user.name) if user.wxid else None

    # --- changes ----------------------------------------------------------------------------

    def bind(self, name: str, contact: str) -> User:
        """Write ``contact`` as ``name``'s wxid (by iLink: ``ilink``) into lcbot.toml
        (locked, atomic); blocking."""
        from lcbot import config

        key = "ilink" if self.identity == "ilink" else "wxid"
        with config.edit(self.config_path) as raw:
            users = parse_users(raw.get("users"), str(self.config_path))
            target = find_user(users, name)
            if target is None:
                raise LookupError(f"user {name!r} no longer exists")
            if any(getattr(u, key) == contact for u in users if u is not target):
                raise LookupError("this contact is already bound to another user")
            raw["users"][users.index(target)][key] = contact
        self.reload()
        bound = self.directory.by_name(name)
        assert bound is not None
        return bound

    def set_room(self, room_id: str, level: str, topic: str | None) -> Room:
        """Store that room ``room_id`` receives alerts of ``level`` and above (locked,
        atomic edit of lcbot.toml); blocking."""
        from lcbot import config

        with config.edit(self.config_path) as raw:
            room = set_room(raw, room_id, level, topic)
        self.reload()
        return room

    def remove_room(self, room_id: str) -> Room | None:
        """Stop alerts to room ``room_id`` (its entry leaves lcbot.toml); blocking."""
        from lcbot import config

        with config.edit(self.config_path) as raw:
            room = remove_room(raw, room_id)
        if room is not None:
            self.reload()
        return room

    def reload(self) -> bool:
        """Read the users again; False (and a warning) when the file is not valid."""
        from lcbot import config

        self._seen = self._stamp()
        try:
            loaded = config.load(self.config_path)
        except LcbotError as exc:
            log.warning("lcbot.toml changed but is not valid; keeping the current users: %s", exc)
            return False
        self.directory = Directory(loaded.users)
        self.rooms = tuple(loaded.rooms)
        self._addresses, self._reachable = {}, None
        log.info(
            "lcbot.toml changed: %d user(s), %d alert room(s) loaded",
            len(loaded.users),
            len(loaded.rooms),
        )
        return True

    def _stamp(self) -> int | None:
        try:
            return self.config_path.stat().st_mtime_ns
        except OSError:
            return None

    def reload_if_changed(self) -> None:
        if self._stamp() not in (None, self._seen):
            self.reload()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH)
            try:
                self.reload_if_changed()
            except Exception:  # an unreadable folder, …: keep the current users
                log.exception("could not re-read %s", self.config_path)

    def running(self) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
        """Watch lcbot.toml while the bot runs (the block gets the watching task)."""
        return background(self._watch(), "lcbot-roster")
