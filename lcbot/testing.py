"""Test plugins (and lcbot itself) against a real bot: ``lcbot_bot`` and ``running_bot``.

::

    def test_ping(lcbot_bot):
        bot = lcbot_bot(plugins=[my_plugin], users={"alice": "admin", "bob": "user"})
        assert bot.send("bob", "ping") == ["pong"]
        assert bot.send("bob", "interval 5") == ["not allowed: interval"]
        bot.alert("disk full", level="critical")
        assert ("bob", "CRITICAL disk full") in bot.sent

Each bot is a real ``App`` (dispatcher, SQLite outbox in a temporary data dir, drainer,
alert router) with an in-memory transport and the built-in plugins. Calls return when
everything they caused has been handled and delivered: no sleeps needed.

* ``send(user, text)``: the messages queued for ``user`` because of it, one per reply;
  ``send(user, text, room=ID, topic=T)``: sent in a group chat (answers go to ``room:ID``);
* ``messages_to(user)``: every message queued for ``user`` so far;
* ``sent``: every delivery ``(recipient, text)`` as the transport got it (coalesced);
* ``lines(user)``: every line delivered to ``user``.

``running_bot(folder, *plugins, …)`` is the same bot for ``async`` tests; ``TestBot`` (the
fixture's bots) drives it from synchronous code. The ``lcbot_bot`` fixture itself lives in
``lcbot.pytest_plugin`` (a ``pytest11`` plugin), so this module needs no pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

DEFAULT_USERS = {"alice": "root", "bob": "admin", "carol": "user"}


def _pairs(users: dict[str, str] | Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    if users is None:
        users = DEFAULT_USERS
    return list(users.items()) if isinstance(users, dict) else list(users)


def _name(plugin: Any, index: int) -> str:
    """A plugin's name (its config section): ``lcbot_plugin_weather`` → ``weather``, as the
    entry point ``lcbot plugin new`` writes; otherwise the module's last name."""
    name = (getattr(plugin, "__name__", None) or f"plugin{index}").rsplit(".", 1)[-1]
    return (
        name.removeprefix("lcbot_plugin_").replace("_", "-")
        if name.startswith("lcbot_plugin_")
        else name
    )


class Harness:
    """A real bot in ``folder`` (its lcbot.toml and ``data/``), driven by ``async`` calls.

    ``plugins``: modules or objects with hook functions, or ``(name, plugin)`` pairs (the
    name is the plugin's config section). ``users``: ``{name: pri}`` or ``(name, pri)``
    pairs; ``config``: more lcbot.toml sections. With ``toml`` (an existing lcbot.toml)
    the bot uses that file instead. ``transport``: a ``MemoryTransport`` (or subclass) to
    use instead of a new one. Only the built-in plugins (unless ``builtins=False``)
    and ``plugins`` are loaded.
    """

    def __init__(
        self,
        folder: Path,
        plugins: Iterable[Any] = (),
        users: dict[str, str] | Iterable[tuple[str, str]] | None = None,
        config: dict[str, Any] | None = None,
        builtins: bool = True,
        identity: str = "name",
        toml: Path | None = None,
        transport: Any = None,
    ) -> None:
        self.folder = folder
        self.plugins = list(plugins)
        self.users = _pairs(users)
        self.config = config or {}
        self.builtins = builtins
        self.identity = identity
        self.toml = toml
        from lcbot import config as lcbot_config
        from lcbot.app import App
        from lcbot.plugins import PluginHost
        from lcbot.transports.memory import MemoryTransport

        if toml is None:  # write the file: `bind` and user edits change it like a real one
            extra = dict(self.config)
            raw = {
                "users": [{"name": n, "pri": p} for n, p in self.users],
                "plugins": {"dirs": []},
                **extra,
                "bot": {"data_dir": str(folder / "data"), **extra.get("bot", {})},
            }
            toml = folder / "lcbot.toml"
            folder.mkdir(parents=True, exist_ok=True)
            lcbot_config.validate(raw, toml)
            lcbot_config.write_atomic(toml, lcbot_config.render(raw))
        host = PluginHost()
        if builtins:
            host.load_builtins()  # plus exactly the plugins given: installed ones stay out
        for i, plugin in enumerate(self.plugins):
            name, plugin = plugin if isinstance(plugin, tuple) else (_name(plugin, i), plugin)
            host.register(plugin, name, source="test")
        failed = [r for r in host.records.values() if r.status == "failed"]
        if failed:
            raise RuntimeError(f"plugin {failed[0].name} failed: {failed[0].error}")
        self.transport = transport or MemoryTransport(identity=identity)
        self.app = App(lcbot_config.load(toml), self.transport, plugins=host)

    # --- running ------------------------------------------------------------------------

    async def start(self) -> Harness:
        await self.app.start()
        return self

    async def stop(self, timeout: float = 5.0) -> None:
        await self.app.stop(timeout)

    async def __aenter__(self) -> Harness:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def restart(self) -> Harness:
        """Stop, and start a new bot on the same data dir with the same plugins and the
        same lcbot.toml (with what chat commands wrote into it: bindings, rooms)."""
        await self.stop()
        again = Harness(
            self.folder,
            self.plugins,
            self.users,
            self.config,
            self.builtins,
            self.identity,
            self.app.config.path,
        )
        return await again.start()

    async def settle(self, timeout: float = 30.0) -> None:
        """Route the alerts raised so far and wait until every message is delivered."""
        if not await self.app.drain(timeout):
            raise TimeoutError(f"messages still pending after {timeout} s")

    # --- talking --------------------------------------------------------------------------

    def _rows_after(self, last_id: int) -> list[tuple[int, str, str]]:
        from lcbot.db.outbox import since

        assert self.app.db.conn is not None
        return since(self.app.db.conn, last_id)

    def _last_id(self) -> int:
        from lcbot.db.outbox import next_id

        assert self.app.db.conn is not None
        return next_id(self.app.db.conn) - 1

    async def send(
        self,
        user: str,
        text: str,
        room: str | None = None,
        name: str | None = None,
        topic: str | None = None,
    ) -> list[str]:
        """``user`` (a user name, or a contact id with ``identity="id"``; display name
        ``name``) sends ``text``; returns the messages queued for ``user`` because of it.
        With ``room`` (a group chat id; its topic ``topic``) the message is sent in that
        group, and the messages queued for ``room:<room>`` are returned."""
        await self.settle()
        last = self._last_id()
        await self.transport.inject(user, text, room, name, topic)
        await self.settle()
        to = user if room is None else f"room:{room}"
        return [t for _, r, t in self._rows_after(last) if r == to]

    async def alert(self, text: str, **fields: Any) -> Any:
        """Raise an alert (as ``bot.alert`` does) and wait until it is routed and delivered;
        returns the ``Alert`` (``id`` and ``outcome`` set)."""
        alert = self.app.bot(fields.pop("plugin", "test")).alert(text, **fields)
        await self.settle()
        return alert

    def messages_to(self, user: str) -> list[str]:
        """Every message queued for ``user`` so far (before coalescing), in order."""
        return [t for _, r, t in self._rows_after(0) if r == user]

    @property
    def sent(self) -> list[tuple[str, str]]:
        """Every message delivered so far, as ``(recipient, text)``, in order."""
        return list(self.transport.sent)

    def to(self, user: str) -> list[str]:
        """Messages delivered to ``user`` (coalesced ones hold several lines)."""
        return [t for r, t in self.transport.sent if r == user]

    def lines(self, user: str) -> list[str]:
        """Every line delivered to ``user``, across (coalesced) messages."""
        return [line for text in self.to(user) for line in text.split("\n")]

    def files_to(self, user: str) -> list[tuple[str, bytes]]:
        """Files delivered to ``user`` so far, as ``(name, content)``, in order."""
        return [(name, data) for r, name, data in self.transport.files if r == user]

    def outcome(self, alert: Any) -> dict[str, Any]:
        """``{"state": …, "to": […], …}`` of an alert (an ``Alert`` or a stored id)."""
        from lcbot.db.alerts import outcome

        assert self.app.db.conn is not None
        alert_id = alert if isinstance(alert, int) else alert.id
        found = outcome(self.app.db.conn, alert_id)
        if found is None:
            raise LookupError(f"no alert {alert_id}")
        return found


@contextlib.asynccontextmanager
async def running_bot(
    folder: Path,
    *plugins: Any,
    users: dict[str, str] | Iterable[tuple[str, str]] | None = None,
    config: dict[str, Any] | None = None,
    builtins: bool = True,
    identity: str = "name",
    toml: Path | None = None,
) -> AsyncIterator[Harness]:
    """``async with running_bot(tmp_path, my_plugin) as bot:`` a started ``Harness``."""
    harness = await Harness(folder, plugins, users, config, builtins, identity, toml).start()
    try:
        yield harness
    finally:
        await harness.stop()


class TestBot:
    """A running bot driven synchronously (its own event loop); see ``Harness``."""

    __test__ = False  # not a test class for pytest

    def __init__(self, harness: Harness, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.new_event_loop()
        self.harness = harness
        self.app = harness.app
        self.transport = harness.transport
        self.loop.run_until_complete(harness.start())

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def send(
        self, user: str, text: str, room: str | None = None, topic: str | None = None
    ) -> list[str]:
        """``user`` sends ``text`` (in group chat ``room``, topic ``topic``, if given);
        returns the messages queued for ``user`` (for ``room:<room>``) because of it."""
        return self._run(self.harness.send(user, text, room, topic=topic))

    def alert(self, text: str, **fields: Any) -> Any:
        """Raise an alert (like ``bot.alert``) and wait until it is routed and delivered."""
        return self._run(self.harness.alert(text, **fields))

    def messages_to(self, user: str) -> list[str]:
        return self.harness.messages_to(user)

    @property
    def sent(self) -> list[tuple[str, str]]:
        return self.harness.sent

    def lines(self, user: str) -> list[str]:
        return self.harness.lines(user)

    def files_to(self, user: str) -> list[tuple[str, bytes]]:
        return self.harness.files_to(user)

    def restart(self) -> TestBot:
        """Stop this bot and start another on the same data dir (state survives)."""
        again = self._run(self.harness.restart())
        self.harness, self.app, self.transport = again, again.app, again.transport
        return self

    def close(self) -> None:
        if not self.loop.is_closed():
            with contextlib.suppress(Exception):
                self._run(self.harness.stop())
            self.loop.close()
