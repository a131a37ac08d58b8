"""Plugin state: each plugin's persistent key/value store in the bot's database (``bot.state``).

Values are anything JSON can hold. They are kept in memory (reads cost nothing) and each
change is written with the outbox's next commit, so ``interval:30`` survives a restart.
A value is copied when it is set: change it again with another assignment.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from lcbot.db import state as sql

MAX_KEY = 200
MAX_VALUE = 64 * 1024  # characters of a value's JSON


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (undecodable bytes)
        return False
    return True


class PluginState(MutableMapping[str, Any]):
    """``bot.state``: a dict-like store of one plugin; safe from any thread."""

    def __init__(self, plugin: str, values: dict[str, Any], record: Callable[..., None]) -> None:
        self.plugin = plugin
        self._values = values
        self._record = record
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY or not _storable(key):
            raise KeyError(f"state keys are texts of 1-{MAX_KEY} characters, not {key!r}")
        text = json.dumps(value)  # TypeError if JSON cannot hold it; ASCII: always storable
        if len(text) > MAX_VALUE:
            raise ValueError(f"state value for {key!r} is larger than {MAX_VALUE:,} characters")
        with self._lock:
            self._values[key] = json.loads(text)
            self._record(sql.put, self.plugin, key, text)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._values[key]
            self._record(sql.delete, self.plugin, key)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<state of {self.plugin}: {self._values!r}>"


class StateStore:
    """Every plugin's state, loaded once at start."""

    def __init__(self, record: Callable[..., None]) -> None:
        self._record = record
        self._values: dict[str, dict[str, Any]] = {}
        self._views: dict[str, PluginState] = {}

    def load(self, conn: Any) -> None:
        self._values = {
            plugin: {key: json.loads(text) for key, text in values.items()}
            for plugin, values in sql.load(conn).items()
        }
        for plugin, view in self._views.items():
            view._values = self._values.setdefault(plugin, {})

    def for_plugin(self, plugin: str) -> PluginState:
        view = self._views.get(plugin)
        if view is None:
            values = self._values.setdefault(plugin, {})
            view = self._views[plugin] = PluginState(plugin, values, self._record)
        return view
