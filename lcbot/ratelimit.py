"""Commands per user per minute (``[bot] commands_per_minute``): past the limit, one
``slow down`` reply, then silence until the sliding minute has room again.

Each known user's messages are counted over the last ``WINDOW`` seconds (refused ones do
not count: a user who waits a minute can always go on). Root users are exempt unless
``[bot] rate_limit_root`` is true. Unknown senders are not counted (they get no reply).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from lcbot.users import Pri, User

WINDOW = 60.0  # seconds


class RateLimit:
    def __init__(
        self, per_minute: int, limit_root: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute  # 0: no limit
        self.limit_root = limit_root
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._told: set[str] = set()  # told to slow down in this window

    def check(self, user: User) -> str | None:
        """None if ``user`` may go on (counted); else the reply to send — ``""`` once they
        have been told (stay silent)."""
        if self.per_minute <= 0 or (user.pri is Pri.ROOT and not self.limit_root):
            return None
        now = self.clock()
        stamps = self._seen.get(user.name)
        if stamps is None:
            stamps = self._seen[user.name] = deque()
        while stamps and now - stamps[0] >= WINDOW:
            stamps.popleft()
        if len(stamps) < self.per_minute:
            stamps.append(now)
            if self._told:
                self._told.discard(user.name)
            return None
        if user.name in self._told:
            return ""
        self._told.add(user.name)
        return f"slow down: {self.per_minute} commands per minute"
