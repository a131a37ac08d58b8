"""The router's chat controls (``bot.alerts``): silences by key and mutes, from any thread;
and the expiry of what the router keeps (``expire``, for retention)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from lcbot.db import Busy, transaction
from lcbot.db import alerts as sql
from lcbot.db import firing as firing_sql
from lcbot.silencing import KEEP_ENDED, delete_ended


class ChatControls:
    """Silences and mutes; mixed into ``lcbot.router.AlertRouter``, which sets the fields."""

    clock: Callable[[], float]
    writer: Any
    settings: Any  # lcbot.alerts.AlertSettings
    db: Any  # lcbot.db.Database
    keys: dict[str, tuple[float, int, float | None]]  # de-duplication: last_sent, repeats, since
    _expire_after: int | None
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

    def expire(self, now: float, limit: int) -> tuple[int, bool]:
        """Forget old history: routed alerts older than ``keep`` (looking at ``limit``
        rows), de-duplication keys past their repeat interval, ended silences and mutes.
        Returns (alerts deleted, whether more may be left)."""
        quiet_before = now - self.settings.repeat_interval
        any_before = now - self.settings.keep
        keys_before = min(any_before, quiet_before)  # never within a key's repeat interval
        for key, (last_sent, repeats, _) in list(self.keys.items()):
            if last_sent < keys_before or (repeats == 0 and last_sent < quiet_before):
                del self.keys[key]
        with self._controls:  # chat commands change these from handler threads
            for ended in [k for k, (until, _) in self.silences.items() if until <= now]:
                del self.silences[ended]
            for ended in [u for u, until in self.mutes.items() if until <= now]:
                del self.mutes[ended]
        conn = self.db.conn
        assert conn is not None
        try:
            with transaction(conn):
                sql.expire_keys(conn, quiet_before, keys_before)
                sql.expire_silences_and_mutes(conn, now)
                delete_ended(conn, now - KEEP_ENDED)
                firing_sql.expire(conn, any_before)
                deleted, self._expire_after = sql.delete_old(
                    conn, any_before, limit, self._expire_after or 0
                )
        except Busy:
            return 0, False
        return deleted, self._expire_after is not None
