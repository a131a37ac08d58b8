"""The iLink links of lcbot's users: one private JSON file per user in ``<data_dir>/ilink``.

``<user>.link.json`` holds the bot token a QR scan gave (mode 0600, in a 0700 folder,
replaced atomically); only this module writes it. ``<user>.state.json`` beside it belongs
to the running transport (cursor, context token, …); removing a link removes both.
Standard library only: ``lcbot user list`` reads links without aiohttp.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lcbot.private import write_private

log = logging.getLogger("lcbot.ilink")

FOLDER = "ilink"
LINK_SUFFIX = ".link.json"
STATE_SUFFIX = ".state.json"


@dataclass(frozen=True)
class Link:
    """A user's link: the bot ``bot_token`` talks to the WeChat user ``ilink_user_id``."""

    user: str
    bot_token: str = field(repr=False)  # secret: never in a log or an error
    bot_id: str
    base_url: str
    ilink_user_id: str
    linked_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> Link:
        """ValueError names the first missing or wrong field."""
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        for key in ("user", "bot_token", "bot_id", "base_url", "ilink_user_id"):
            if not isinstance(value.get(key), str) or not value[key]:
                raise ValueError(f"{key} must be a non-empty text")
        linked_at = value.get("linked_at")
        if isinstance(linked_at, bool) or not isinstance(linked_at, int | float):
            raise ValueError("linked_at must be a number")
        return cls(
            value["user"],
            value["bot_token"],
            value["bot_id"],
            value["base_url"],
            value["ilink_user_id"],
            float(linked_at),
        )


def file_stem(user: str) -> str:
    """A user name as a file name: case-folded (names are case-insensitive) and
    percent-encoded, so no name reaches outside the folder."""
    stem = quote(user.casefold(), safe="")
    return stem.replace(".", "%2E") if stem.strip(".") == "" else stem


class LinkStore:
    """The links under ``<data_dir>/ilink``."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / FOLDER

    def link_path(self, user: str) -> Path:
        return self.folder / f"{file_stem(user)}{LINK_SUFFIX}"

    def state_path(self, user: str) -> Path:
        return self.folder / f"{file_stem(user)}{STATE_SUFFIX}"

    def ensure_folder(self) -> Path:
        """The folder, created (and kept) mode 0700."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.folder.stat().st_mode & 0o077:
            os.chmod(self.folder, 0o700)
        return self.folder

    def save(self, link: Link) -> Path:
        """Write ``link`` (0600, atomic replace); a new scan replaces the old link."""
        self.ensure_folder()
        path = self.link_path(link.user)
        text = json.dumps(link.to_json(), ensure_ascii=False, indent=2) + "\n"
        write_private(path, text.encode())
        return path

    def load(self, user: str) -> Link | None:
        """``user``'s link; None when there is none or the file is damaged (a warning)."""
        return self._read(self.link_path(user))

    def remove(self, user: str) -> bool:
        """Forget ``user``'s link and the transport's state of it; False if none was there."""
        removed = False
        for path in (self.link_path(user), self.state_path(user)):
            try:
                path.unlink()
                removed = removed or path.name.endswith(LINK_SUFFIX)
            except FileNotFoundError:
                pass
        return removed

    def remove_state(self, user: str) -> None:
        """Delete the transport's state of ``user``'s link (a new scan starts afresh)."""
        with contextlib.suppress(FileNotFoundError):
            self.state_path(user).unlink()

    def all(self) -> list[Link]:
        """Every readable link, by user name."""
        links = [link for path in self._files() if (link := self._read(path)) is not None]
        return sorted(links, key=lambda link: link.user.casefold())

    def stamp(self) -> tuple:
        """Changes whenever a link file is added, replaced or removed."""
        entries = []
        for path in self._files():
            with contextlib.suppress(OSError):
                st = path.stat()
                entries.append((path.name, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(entries)

    def _files(self) -> list[Path]:
        try:
            names = sorted(os.listdir(self.folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [self.folder / n for n in names if n.endswith(LINK_SUFFIX)]

    @staticmethod
    def _read(path: Path) -> Link | None:
        try:
            return Link.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring the iLink link file %s: %s", path, exc)
            return None


def new_link(user: str, confirmed: dict[str, Any], base_url: str) -> Link:
    """The Link of a ``confirmed`` QR status (its ``baseurl`` wins over ``base_url``)."""
    given = confirmed.get("baseurl")
    return Link(
        user=user,
        bot_token=str(confirmed.get("bot_token") or ""),
        bot_id=str(confirmed.get("ilink_bot_id") or ""),
        base_url=given if isinstance(given, str) and given else base_url,
        ilink_user_id=str(confirmed.get("ilink_user_id") or ""),
        linked_at=time.time(),
    )
