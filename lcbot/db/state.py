"""SQL for ``plugin_state``: each plugin's persistent key/value store (values are JSON)."""

from __future__ import annotations

import sqlite3


def load(db: sqlite3.Connection) -> dict[str, dict[str, str]]:
    """Every plugin's values as JSON text: ``{plugin: {key: json}}``."""
    found: dict[str, dict[str, str]] = {}
    for plugin, key, value in db.execute("SELECT plugin, key, value FROM plugin_state"):
        found.setdefault(plugin, {})[key] = value
    return found


def put(db: sqlite3.Connection, plugin: str, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO plugin_state VALUES (?, ?, ?)", (plugin, key, value))


def delete(db: sqlite3.Connection, plugin: str, key: str) -> None:
    db.execute("DELETE FROM plugin_state WHERE plugin = ? AND key = ?", (plugin, key))
