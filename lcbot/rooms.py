"""Group chats that receive alerts: the ``[[rooms]]`` array of lcbot.toml.

Each entry names a group chat by its id (``id``, the WeChat room id), says what to call
it (``topic``, for humans; the id is what counts) and the least alert level it receives
(``alerts``: that level and above). Set from the group itself with ``room alerts LEVEL``,
ended with ``room off`` (the entry is removed). As with users, the functions here edit the
raw TOML document, so keys lcbot does not know survive every edit.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lcbot.errors import ConfigError, UsageError
from lcbot.schema import LEVELS
from lcbot.users import Directory, User, check_identifier

MAX_TOPIC = 200  # characters of a stored topic
RANK = {level: i for i, level in enumerate(LEVELS)}  # info 0 < warning 1 < critical 2
PREFIX = "room:"  # an outbox recipient (and a hook's alert.recipients entry) for a room


class InvalidRoom(UsageError, ValueError):
    """A room id or alert level that cannot be stored (exit 2 on the CLI, ``ValueError``
    for plugins)."""


@dataclass(frozen=True)
class Room:
    """A group chat that receives alerts of level ``alerts`` and above."""

    id: str
    alerts: str
    topic: str | None = None

    @property
    def recipient(self) -> str:
        """The outbox recipient: ``room:<id>``."""
        return PREFIX + self.id

    @property
    def label(self) -> str:
        """What to call it: ``ops (4242@chatroom)``, or the id alone without a topic."""
        return f"{self.topic} ({self.id})" if self.topic else self.id

    def receives(self, level: str) -> bool:
        """Whether an alert of ``level`` goes to this room."""
        return RANK.get(level, 0) >= RANK[self.alerts]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "topic": self.topic, "alerts": self.alerts}


def check_level(value: Any) -> str:
    if value not in LEVELS:
        raise InvalidRoom(f"unknown alert level {value!r}; valid levels: {', '.join(LEVELS)}")
    return value


def check_room_id(value: Any) -> str:
    """``value`` if it is usable as a room id (as a contact id), else ``InvalidRoom``."""
    try:
        return check_identifier(value, "room id")
    except UsageError as exc:
        raise InvalidRoom(str(exc)) from None


def clean_topic(topic: Any) -> str | None:
    """A topic fit to store: controls become spaces, cut to ``MAX_TOPIC``; None if blank."""
    if not isinstance(topic, str):
        return None
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in topic).strip()
    return text[:MAX_TOPIC] or None


def parse_rooms(raw: Any, source: str) -> list[Room]:
    """Validate the ``[[rooms]]`` array of a loaded config; ConfigError names the entry."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: 'rooms' must be an array of tables ([[rooms]])")
    rooms: list[Room] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"{source}: rooms[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        topic = entry.get("topic")
        try:
            room_id = check_room_id(entry.get("id"))
            level = check_level(entry.get("alerts"))
            if topic is not None and (not isinstance(topic, str) or clean_topic(topic) != topic):
                raise UsageError(
                    f"topic must be a text of at most {MAX_TOPIC} characters without control "
                    f"characters or outer spaces, got {topic!r}"
                )
        except UsageError as exc:
            label = entry.get("id") if isinstance(entry.get("id"), str) else None
            raise ConfigError(f"{where}{f' ({label})' if label else ''}: {exc}") from None
        if room_id in seen:
            raise ConfigError(f"{where}: duplicate room id {room_id!r}")
        seen.add(room_id)
        rooms.append(Room(room_id, level, topic))
    return rooms


def find_room(rooms: list[Room], room_id: str) -> Room | None:
    return next((r for r in rooms if r.id == room_id), None)


# --- edits on the raw TOML document -------------------------------------------------------


def named_recipients(
    names: Iterable[str], directory: Directory, rooms: Iterable[Room], level: str
) -> tuple[list[User], list[Room], list[str]]:
    """The users and rooms a hook's ``alert.recipients`` names (each once, in order), and
    the names matching neither. A ``room:<id>`` reaches that group whether or not
    lcbot.toml lists it (then at ``level``)."""
    users: list[User] = []
    chosen: list[Room] = []
    unknown: list[str] = []
    for name in dict.fromkeys(names):
        if name.startswith(PREFIX):
            room_id = name[len(PREFIX) :]
            try:
                check_room_id(room_id)
            except InvalidRoom:
                unknown.append(name)
                continue
            room = find_room(list(rooms), room_id) or Room(room_id, level)
            if room not in chosen:
                chosen.append(room)
        elif (user := directory.by_name(name)) is not None:
            if user not in users:
                users.append(user)
        else:
            unknown.append(name)
    return users, chosen, unknown


def set_room(doc: dict[str, Any], room_id: str, level: str, topic: str | None) -> Room:
    """Make room ``room_id`` receive alerts of ``level`` and above (added or updated; a
    ``topic`` given replaces the stored one)."""
    check_room_id(room_id)
    check_level(level)
    topic = clean_topic(topic)
    entries = doc.setdefault("rooms", [])
    rooms = parse_rooms(entries, "lcbot.toml")
    found = find_room(rooms, room_id)
    if found is None:
        entry: dict[str, Any] = {"id": room_id}
        if topic:
            entry["topic"] = topic
        entry["alerts"] = level
        entries.append(entry)
        return Room(room_id, level, topic)
    entry = entries[rooms.index(found)]
    entry["alerts"] = level
    if topic:
        entry["topic"] = topic
    return Room(room_id, level, topic or found.topic)


def remove_room(doc: dict[str, Any], room_id: str) -> Room | None:
    """Stop alerts to room ``room_id`` (its entry goes); the room, or None if it had none."""
    entries = doc.get("rooms")
    rooms = parse_rooms(entries, "lcbot.toml")
    found = find_room(rooms, room_id)
    if found is None:
        return None
    del entries[rooms.index(found)]
    if not entries:
        del doc["rooms"]
    return found
