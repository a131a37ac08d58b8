"""The router's chat controls (``bot.alerts``): silences by key and mutes, from any thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from lcbot.db import alerts as sql


class ChatControls:
    """Silences and mutes; mixed into ``lcbot.router.AlertRouter``, which sets the fields."""

    clock: Callable[[], float]
    writer: Any
    silences: dict[str, tuple[float, str]]  # key → until, by
    mutes: dict[str, float]  # user → until
    _controls: threading.Lock

    def _muted(self, user: str) -> bool:
        return self.mutes.get(user, 0) > self.clock()

    def _silenced(self, key: str, now: float) -> bool:
        entry = self.silences.get(key)
        return entry is not None and entry[0] > now

    def silence(self, key: str, seconds: float, by: str) -> None:
        until = self.clock() + seconds
        with self._controls:
            self.silences[key] = (until, by)
            self.writer.record(sql.save_silence, key, until, by)

    def unsilence(self, key: str) -> bool:
        with self._controls:
            self.writer.record(sql.delete_silence, key)
            return self.silences.pop(key, None) is not None

    def active_silences(self) -> list[tuple[str, float, str]]:
        """``(key, until, by)`` of each silence in force, by key."""
        now = self.clock()
        with self._controls:
            return sorted((k, u, b) for k, (u, b) in self.silences.items() if u > now)

    def mute(self, user: str, seconds: float) -> float:
        until = self.clock() + seconds
        with self._controls:
            self.mutes[user] = until
            self.writer.record(sql.save_mute, user, until)
        return until

    def unmute(self, user: str) -> bool:
        with self._controls:
            self.writer.record(sql.delete_mute, user)
            return self.mutes.pop(user, None) is not None
