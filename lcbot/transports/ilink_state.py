"""The running iLink transport's state per link: ``<data_dir>/ilink/<user>.state.json``.

Written only by the running transport (0600, atomic replace), read by ``lcbot ilink
status``. Holds the long-poll cursor and the last message ids seen (so a restart neither
loses nor repeats a message), and the reply window (``ilink_window.Window``). A state whose
``bot_id`` is not the link's belongs to an earlier scan: it is reset.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcbot.ilink.store import LinkStore
from lcbot.private import write_private
from lcbot.transports.ilink_window import Window

log = logging.getLogger("lcbot.ilink")

SEEN = 512  # message ids remembered for de-duplication


@dataclass
class LinkState:
    bot_id: str
    cursor: str = ""
    seen: list[str] = field(default_factory=list)
    last_poll: float | None = None  # when a long poll last answered
    window: Window = field(default_factory=Window)

    def saw(self, key: str) -> bool:
        """Whether message ``key`` was handed on already; remembers it if not."""
        if key in self.seen:
            return True
        self.seen.append(key)
        del self.seen[:-SEEN]
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "bot_id": self.bot_id,
            "cursor": self.cursor,
            "seen": list(self.seen),
            "last_poll": self.last_poll,
            **self.window.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], bot_id: str) -> LinkState:
        """The state in ``data`` if it belongs to ``bot_id``; a fresh one otherwise."""
        if data.get("bot_id") != bot_id:
            return cls(bot_id)
        cursor = data.get("cursor")
        seen = data.get("seen")
        last_poll = data.get("last_poll")
        return cls(
            bot_id,
            cursor=cursor if isinstance(cursor, str) else "",
            seen=[s for s in seen if isinstance(s, str)][-SEEN:] if isinstance(seen, list) else [],
            last_poll=float(last_poll) if isinstance(last_poll, int | float) else None,
            window=Window.from_json(data),
        )


def state_path(data_dir: Path, user: str) -> Path:
    """``<data_dir>/ilink/<user>.state.json`` (the name as ``LinkStore`` spells it)."""
    return LinkStore(data_dir).state_path(user)


def read_state(data_dir: Path, user: str) -> dict[str, Any] | None:
    """The raw state file of ``user`` (None when absent or unreadable)."""
    try:
        data = json.loads(state_path(data_dir, user).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_state(data_dir: Path, user: str, bot_id: str) -> LinkState:
    """``user``'s state for the link with ``bot_id`` (fresh when absent, damaged or of
    another scan)."""
    path = state_path(data_dir, user)
    data = read_state(data_dir, user)
    if data is None:
        if path.exists():
            log.warning("%s is not readable; starting that link afresh", path)
        return LinkState(bot_id)
    state = LinkState.from_json(data, bot_id)
    if data.get("bot_id") != bot_id:
        log.info("ilink: %s linked again: a fresh cursor and reply window", user)
    return state


def save_state(data_dir: Path, user: str, state: LinkState) -> None:
    """Write ``user``'s state (0600, atomic)."""
    LinkStore(data_dir).ensure_folder()
    path = state_path(data_dir, user)
    write_private(path, json.dumps(state.to_json(), sort_keys=True).encode())
