"""The ``lcbot_bot`` pytest fixture (registered as a ``pytest11`` plugin): real bots for
plugin tests. See ``lcbot.testing`` for what a bot offers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from lcbot.testing import Harness, TestBot


@pytest.fixture
def lcbot_bot(tmp_path: Path):
    """A factory: ``lcbot_bot(plugins=[...], users={name: pri}, config={section: {...}})``."""
    bots: list[TestBot] = []

    def make(
        plugins: Iterable[Any] = (),
        users: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
    ) -> TestBot:
        bot = TestBot(Harness(tmp_path / f"bot{len(bots)}", plugins, users, config))
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.close()
