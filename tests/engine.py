"""In-process bot for engine tests: a real App on a temp data dir with a MemoryTransport."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from lcbot.app import App
from lcbot.config import validate
from lcbot.plugins import PluginHost
from lcbot.transports.memory import MemoryTransport

USERS = [("root1", "root"), ("admin1", "admin"), ("admin2", "admin"), ("user1", "user")]


class Bot:
    def __init__(self, app: App, transport: MemoryTransport) -> None:
        self.app = app
        self.transport = transport

    async def alert(self, text: str, **kw) -> int:
        """Raise an alert and wait until it is routed and every message is sent."""
        alert_id = self.app.alert(text, **kw)
        await asyncio.sleep(0)
        self.app.alerts.route_new()
        assert await self.app.drain(10)
        return alert_id

    def outcome(self, alert_id: int) -> dict:
        import json

        db = self.app.outbox.db
        state, outcome = db.execute(
            "SELECT state, outcome FROM alerts WHERE id = ?", (alert_id,)
        ).fetchone()
        return {"state": state, **json.loads(outcome or "{}")}

    async def send(self, sender: str, text: str) -> list[str]:
        """Send as ``sender``; return the texts that reached ``sender`` because of it."""
        before = len(self.transport.sent)
        await self.transport.inject(sender, text)
        assert await self.app.drain(10)
        return [t for r, t in self.transport.sent[before:] if r == sender]

    def to(self, recipient: str) -> list[str]:
        """Messages sent to ``recipient`` (coalesced ones hold several lines)."""
        return [t for r, t in self.transport.sent if r == recipient]

    def lines(self, recipient: str) -> list[str]:
        """Every line sent to ``recipient``, across (coalesced) messages."""
        return [line for text in self.to(recipient) for line in text.split("\n")]


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path, *plugins, users=USERS, bot=None, builtins=True, sections=None
):
    raw = {
        "bot": {"data_dir": str(tmp_path / "data"), **(bot or {})},
        "users": [{"name": n, "pri": p} for n, p in users],
        "plugins": {"dirs": []},
        **(sections or {}),
    }
    config = validate(raw, tmp_path / "lcbot.toml")
    host = PluginHost()
    if builtins:
        host.load_builtins()
    for i, plugin in enumerate(plugins):
        host.register(plugin, getattr(plugin, "__name__", f"test{i}"), source="dir")
    transport = MemoryTransport()
    app = App(config, transport, plugins=host)
    await app.start()
    try:
        yield Bot(app, transport)
    finally:
        await app.stop(5)
