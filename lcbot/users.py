"""Users and privileges: who may talk to the bot, and how powerful they are.

Users live in the ``[[users]]`` array of lcbot.toml. The functions here edit that array in
the raw TOML document (a dict), so keys lcbot does not know about survive every edit.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass
from typing import Any

from lcbot.errors import ConfigError, UsageError


class Pri(enum.IntEnum):
    """Privilege. Lower is more powerful; a command's ``pri`` is the least one allowed."""

    ROOT = 0
    ADMIN = 1
    USER = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Pri:
        """``"root"`` / ``"admin"`` / ``"user"`` (any case) → Pri, else UsageError."""
        if isinstance(text, str) and text.strip().upper() in cls.__members__:
            return cls[text.strip().upper()]
        raise UsageError(f"unknown privilege {text!r}; valid privileges: {', '.join(PRI_NAMES)}")


PRI_NAMES = tuple(p.label for p in Pri)


@dataclass(frozen=True)
class User:
    """A configured user. ``wxid`` is the WeChat contact id once the user is bound;
    ``ilink`` the iLink (ClawBot) user id once they linked their WeChat by a QR scan."""

    name: str
    pri: Pri
    wxid: str | None = None
    ilink: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "pri": self.pri.label, "wxid": self.wxid, "ilink": self.ilink}


def check_identifier(value: Any, what: str) -> str:
    """Return ``value`` if it is usable as a user name or contact id, else raise UsageError.

    Refused: non-strings, empty text, any whitespace, control or format characters; in a
    user name also ``:`` (full-width too), which marks message addresses (``room:…``).
    """
    if not isinstance(value, str) or not value:
        raise UsageError(f"invalid {what} {value!r}: it must be a non-empty text")
    if what == "user name" and (":" in value or "：" in value):
        raise UsageError(
            f"invalid {what} {value!r}: no ':' allowed (it marks addresses such as room:…)"
        )
    for ch in value:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise UsageError(f"invalid {what} {value!r}: no spaces or control characters allowed")
    if len(value) > 64:
        raise UsageError(f"invalid {what} {value!r}: at most 64 characters")
    return value


def parse_users(raw: Any, source: str) -> list[User]:
    """Validate the ``[[users]]`` array of a loaded config; ConfigError names the bad entry."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: 'users' must be an array of tables ([[users]])")
    users: list[User] = []
    seen_names: set[str] = set()
    seen_ids: set[str] = set()
    seen_ilinks: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"{source}: users[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        try:
            name = check_identifier(entry.get("name"), "user name")
            pri_text = entry.get("pri")
            if not isinstance(pri_text, str):
                raise UsageError(
                    f"pri must be one of {', '.join(PRI_NAMES)} (a quoted text), got {pri_text!r}"
                )
            pri = Pri.parse(pri_text)
            wxid = entry.get("wxid")
            if wxid is not None:
                check_identifier(wxid, "wxid")
            ilink = entry.get("ilink")
            if ilink is not None:
                check_identifier(ilink, "ilink")
        except UsageError as exc:
            label = entry.get("name") if isinstance(entry.get("name"), str) else None
            raise ConfigError(f"{where}{f' ({label})' if label else ''}: {exc}") from None
        if name.casefold() in seen_names:
            raise ConfigError(f"{where}: duplicate user name {name!r}")
        if wxid is not None and wxid in seen_ids:
            raise ConfigError(f"{where} ({name}): wxid {wxid!r} is already used by another user")
        if ilink is not None and ilink in seen_ilinks:
            raise ConfigError(f"{where} ({name}): ilink {ilink!r} is already used by another user")
        seen_names.add(name.casefold())
        if wxid is not None:
            seen_ids.add(wxid)
        if ilink is not None:
            seen_ilinks.add(ilink)
        users.append(User(name, pri, wxid, ilink))
    return users


def find_user(users: list[User], name: str) -> User | None:
    """The user called ``name`` (case-insensitive), or None."""
    folded = name.casefold()
    return next((u for u in users if u.name.casefold() == folded), None)


# --- edits on the raw TOML document -------------------------------------------------------


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc.setdefault("users", [])


def _index(doc: dict[str, Any], name: str) -> int:
    folded = name.casefold()
    for i, entry in enumerate(_entries(doc)):
        if str(entry.get("name", "")).casefold() == folded:
            return i
    raise UsageError(f"no user named {name!r} (see: lcbot user list)")


def _roots_after(doc: dict[str, Any], skip: int) -> int:
    return sum(
        1
        for i, e in enumerate(_entries(doc))
        if i != skip and str(e.get("pri", "")).lower() == "root"
    )


def add_user(doc: dict[str, Any], name: str, pri: Pri, wxid: str | None = None) -> User:
    """Append a user; refuses invalid or duplicate names and contact ids."""
    check_identifier(name, "user name")
    if wxid is not None:
        check_identifier(wxid, "wxid")
    existing = parse_users(doc.get("users"), "lcbot.toml")
    if find_user(existing, name):
        raise UsageError(f"user {name!r} already exists")
    if wxid is not None and any(u.wxid == wxid for u in existing):
        raise UsageError(f"wxid {wxid!r} already belongs to another user")
    entry: dict[str, Any] = {"name": name, "pri": pri.label}
    if wxid is not None:
        entry["wxid"] = wxid
    _entries(doc).append(entry)
    return User(name, pri, wxid)


def remove_user(doc: dict[str, Any], name: str, force: bool = False) -> User:
    """Remove a user; refuses to remove the last root unless ``force``."""
    users = parse_users(doc.get("users"), "lcbot.toml")
    i = _index(doc, name)
    user = users[i]
    if user.pri is Pri.ROOT and _roots_after(doc, i) == 0 and not force:
        raise UsageError(
            f"{user.name!r} is the last root user; removing it would lock everyone out "
            "of root commands (use --force to do it anyway)"
        )
    del _entries(doc)[i]
    return user


def set_pri(doc: dict[str, Any], name: str, pri: Pri, force: bool = False) -> tuple[User, User]:
    """Change a user's privilege; refuses to demote the last root unless ``force``."""
    users = parse_users(doc.get("users"), "lcbot.toml")
    i = _index(doc, name)
    before = users[i]
    if before.pri is Pri.ROOT and pri is not Pri.ROOT and _roots_after(doc, i) == 0 and not force:
        raise UsageError(
            f"{before.name!r} is the last root user; demoting it would lock everyone out "
            "of root commands (use --force to do it anyway)"
        )
    _entries(doc)[i]["pri"] = pri.label
    return before, User(before.name, pri, before.wxid, before.ilink)


def set_ilink(doc: dict[str, Any], name: str, ilink: str | None) -> User:
    """Record (or, with None, drop) the iLink user id of a user; refuses an id that belongs
    to another user."""
    users = parse_users(doc.get("users"), "lcbot.toml")
    i = _index(doc, name)
    user = users[i]
    entry = _entries(doc)[i]
    if ilink is None:
        entry.pop("ilink", None)
        return User(user.name, user.pri, user.wxid, None)
    check_identifier(ilink, "ilink")
    other = next((u for u in users if u.ilink == ilink and u is not user), None)
    if other is not None:
        raise UsageError(f"this WeChat account is already linked to {other.name!r}")
    entry["ilink"] = ilink
    return User(user.name, user.pri, user.wxid, ilink)


class Directory:
    """Fast look-up of configured users by name (case-insensitive), WeChat contact id or
    iLink user id."""

    def __init__(self, users: list[User]) -> None:
        self.users = list(users)
        self._by_name = {u.name.casefold(): u for u in self.users}
        self._by_wxid = {u.wxid: u for u in self.users if u.wxid}
        self._by_ilink = {u.ilink: u for u in self.users if u.ilink}

    def by_name(self, name: str) -> User | None:
        return self._by_name.get(name.casefold())

    def by_wxid(self, wxid: str) -> User | None:
        return self._by_wxid.get(wxid)

    def by_ilink(self, ilink: str) -> User | None:
        return self._by_ilink.get(ilink)

    def first_root(self) -> User | None:
        return next((u for u in self.users if u.pri is Pri.ROOT), None)

    def __iter__(self):
        return iter(self.users)

    def __len__(self) -> int:
        return len(self.users)
