"""Test plugins against a real bot: the ``lcbot_bot`` pytest fixture (a ``pytest11`` plugin).

::

    def test_ping(lcbot_bot):
        bot = lcbot_bot(plugins=[my_plugin], users={"alice": "admin", "bob": "user"})
        assert bot.send("alice", "ping") == ["pong"]
        assert bot.send("bob", "interval 5") == ["not allowed: interval"]
        bot.alert("disk full", level="critical")
        assert ("bob", "CRITICAL disk full") in bot.sent

Each bot is a real ``App`` (dispatcher, SQLite outbox in a temporary data dir, drainer,
alert router) with an in-memory transport and the built-in plugins. Calls return when
everything they caused has been handled and delivered: no sleeps needed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

DEFAULT_USERS = {"alice": "root", "bob": "admin", "carol": "user"}


class TestBot:
    """A running bot driven synchronously. ``sent``: every delivery ``(recipient, text)``."""

    __test__ = False  # not a test class for pytest

    def __init__(
        self,
        data_dir: Path,
        plugins: list[Any] = (),
        users: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        from lcbot.app import App
        from lcbot.config import validate
        from lcbot.plugins import PluginHost
        from lcbot.transports.memory import MemoryTransport

        raw = {
            "bot": {"data_dir": str(data_dir / "data")},
            "users": [{"name": n, "pri": p} for n, p in (users or DEFAULT_USERS).items()],
            "plugins": {"dirs": []},
            **(config or {}),
        }
        raw["bot"] = {"data_dir": str(data_dir / "data"), **raw.get("bot", {})}
        host = PluginHost()
        host.load_builtins()  # plus exactly the plugins given: installed ones stay out
        for i, plugin in enumerate(plugins):
            name = getattr(plugin, "__name__", None) or f"plugin{i}"
            host.register(plugin, name.rsplit(".", 1)[-1], source="test")
        failed = [r for r in host.records.values() if r.status == "failed"]
        if failed:
            raise RuntimeError(f"plugin {failed[0].name} failed: {failed[0].error}")
        self.loop = asyncio.new_event_loop()
        self.transport = MemoryTransport()
        self.app = App(validate(raw, data_dir / "lcbot.toml"), self.transport, plugins=host)
        self.loop.run_until_complete(self.app.start())

    @property
    def sent(self) -> list[tuple[str, str]]:
        """Every message delivered so far, as ``(recipient, text)``, in order."""
        return list(self.transport.sent)

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _messages_after(self, last_id: int) -> list[tuple[str, str]]:
        rows = self.app.outbox.db.execute(
            "SELECT recipient, text FROM outbox WHERE id > ? ORDER BY id", (last_id,)
        ).fetchall()
        return [(r, t) for r, t in rows]

    def _last_id(self) -> int:
        self.app._store()
        return self.app.outbox.db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]

    async def _settle(self) -> None:
        self.app.alerts.route_new()
        if not await self.app.drain(30):
            raise TimeoutError("messages still pending after 30 s")

    def send(self, user: str, text: str) -> list[str]:
        """``user`` sends ``text``; returns the replies to ``user`` it caused, in order."""
        last = self._last_id()
        self._run(self.transport.inject(user, text))
        self._run(self._settle())
        return [t for r, t in self._messages_after(last) if r == user]

    def messages_to(self, user: str) -> list[str]:
        """Every message queued for ``user`` so far (before coalescing), in order."""
        return [t for r, t in self._messages_after(0) if r == user]

    def alert(self, text: str, **kwargs: Any) -> int:
        """Raise an alert (like ``app.alert``) and wait until it is routed and delivered."""
        alert_id = self.app.alert(text, **kwargs)
        self._run(self._settle())
        return alert_id

    def close(self) -> None:
        if not self.loop.is_closed():
            self._run(self.app.stop(5))
            self.loop.close()


@pytest.fixture
def lcbot_bot(tmp_path: Path):
    """A factory: ``lcbot_bot(plugins=[...], users={name: pri}, config={section: {...}})``."""
    bots: list[TestBot] = []

    def make(
        plugins: list[Any] = (),
        users: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
    ) -> TestBot:
        bot = TestBot(tmp_path / f"bot{len(bots)}", plugins, users, config)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.close()
