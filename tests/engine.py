"""The team the engine tests use, on the shipped harness (``lcbot.testing.running_bot``)."""

from __future__ import annotations

import functools

from lcbot.testing import running_bot as _running_bot

USERS = [("root1", "root"), ("admin1", "admin"), ("admin2", "admin"), ("user1", "user")]

running_bot = functools.partial(_running_bot, users=USERS)
