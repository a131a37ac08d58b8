"""Commands: the registered ``Command``, the ``Registry`` plugins fill, and ``parse()``.

A ``Command`` is what a plugin registers (type, name, least privilege, handler). An
``Invocation`` is one use of it (command, user, extra text). Keep the two apart.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from lcbot.users import Pri, User

log = logging.getLogger("lcbot.commands")

NAME_RE = re.compile(r"[^\s:：]{1,32}")
CONCURRENCY = ("queue", "reject")


class CommandError(Exception):
    """Raise from a handler for an expected failure (bad value…): the user gets
    ``<command> failed: <message>`` and the log gets one line, not a traceback."""


class CmdType(enum.Enum):
    """GET reads state; SET changes it (needs a value); QUIT stops the bot."""

    GET = "get"
    SET = "set"
    QUIT = "quit"


@dataclass(frozen=True)
class Command:
    """A registered chat command.

    ``pri`` is the least privilege allowed to run it (a user may when ``user.pri <= pri``).
    ``concurrency`` applies to SET commands: ``"queue"`` runs overlapping invocations one
    after another; ``"reject"`` answers ``busy: …`` while one is running. ``confirm``: the
    sender must answer ``yes`` first; ``approve``: a second admin or root must approve it
    (``lcbot.approval``). ``thread``: a ``def`` handler always runs in the thread pool
    (else one that has been quick its last runs is called on the event loop: ``Runner``).
    """

    name: str
    handler: Callable[..., Any]
    kind: CmdType = CmdType.GET
    pri: Pri = Pri.USER
    help: str = ""
    usage: str = ""
    concurrency: str = "queue"
    hidden: bool = False
    plugin: str = ""
    confirm: bool = False  # runs only after the user answers "yes" (QUIT commands always ask)
    approve: bool = False  # runs only once another admin or root sends "approve ID"
    thread: bool = False  # a def handler always runs in the thread pool

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.fullmatch(self.name):
            raise ValueError(f"invalid command name {self.name!r}: 1-32 characters, no spaces")
        object.__setattr__(self, "name", self.name.lower())
        object.__setattr__(self, "kind", CmdType(self.kind))
        object.__setattr__(self, "pri", Pri(self.pri))
        if self.concurrency not in CONCURRENCY:
            raise ValueError(f"concurrency must be one of {CONCURRENCY}, not {self.concurrency!r}")
        if not callable(self.handler):
            raise TypeError(f"handler of command {self.name!r} is not callable")

    @functools.cached_property
    def is_async(self) -> bool:
        """Whether the handler is an ``async def`` (runs on the event loop, not in a thread)."""
        return inspect.iscoroutinefunction(self.handler)

    @property
    def usage_text(self) -> str:
        """How to call it, e.g. ``interval:VALUE — set poll interval (s)``."""
        form = self.usage or (f"{self.name}:VALUE" if self.kind is CmdType.SET else self.name)
        return f"{form} — {self.help}" if self.help else form

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind.name,
            "pri": self.pri.label,
            "plugin": self.plugin,
            "help": self.help,
            "concurrency": self.concurrency,
            "confirm": self.confirm,
            "approve": self.approve,
        }


@dataclass(frozen=True, slots=True)
class Invocation:
    """One request to run ``command`` by ``user`` with ``extra`` (text after the name),
    sent in the group chat ``room_id`` (topic ``room_topic``) or privately (None)."""

    command: Command
    user: User
    extra: str | None
    room_id: str | None = None
    room_topic: str | None = None


class Registry:
    """The command table. Each plugin fills it through its own view (``for_plugin``), which
    stamps its name on what it adds; the table may change at run time.

    When two plugins register one name, the plugin loaded first keeps it (``rank``: plugin
    name → load order, given by the plugin host) and a warning names both.
    """

    def __init__(self, rank: dict[str, int] | None = None) -> None:
        self.commands: dict[str, Command] = {}
        self.rank = rank if rank is not None else {}
        self._offered: dict[str, list[Command]] | None = None  # see offered_by_jobs

    def offered_by_jobs(self, name: str) -> list[Command]:
        """The job commands called ``name`` (``crawler.interval`` for ``interval``), sorted;
        an index rebuilt after the table changes, not a scan per message."""
        if self._offered is None:
            offered: dict[str, list[Command]] = {}
            for command in sorted(self.commands.values(), key=lambda c: c.name):
                if command.plugin[:4] == "job:":
                    parts = command.name.split(".")
                    for i in range(1, len(parts)):  # every name it ends with after a dot
                        offered.setdefault(".".join(parts[i:]), []).append(command)
            self._offered = offered
        return self._offered.get(name.lower(), [])

    def for_plugin(self, plugin: str) -> PluginRegistry:
        return PluginRegistry(self, plugin)

    def add(self, command: Command) -> bool:
        """Register ``command``. If the name is taken, the earlier-loaded plugin keeps it
        (a warning names both); returns whether ``command`` is registered now."""
        existing = self.commands.get(command.name)
        if existing is not None:
            last = len(self.rank)
            keep_existing = self.rank.get(existing.plugin, last) <= self.rank.get(
                command.plugin, last
            )
            kept, ignored = (existing, command) if keep_existing else (command, existing)
            log.warning(
                "command %r from plugin %r ignored: plugin %r registered it first",
                command.name,
                ignored.plugin or "?",
                kept.plugin or "?",
            )
            if keep_existing:
                return False
        self.commands[command.name] = command
        self._offered = None
        return True

    def update(self, name: str, /, **changes: Any) -> Command:
        """Change fields of a registered command (e.g. ``pri=Pri.ADMIN``, ``handler=fn``)."""
        current = self.get(name)
        if current is None:
            raise KeyError(f"no command {name!r}")
        updated = replace(current, **changes)
        taken = self.commands.get(updated.name)
        if taken is not None and taken is not current:
            raise ValueError(f"command {updated.name!r} belongs to plugin {taken.plugin!r}")
        self.commands.pop(current.name)
        self.commands[updated.name] = updated
        self._offered = None
        return updated

    def remove(self, name: str) -> Command | None:
        """Unregister a command; returns it, or None if it was not registered."""
        self._offered = None
        return self.commands.pop(name.lower(), None)

    def remove_plugin(self, plugin: str) -> None:
        """Unregister every command of ``plugin``."""
        for name in [n for n, c in self.commands.items() if c.plugin == plugin]:
            del self.commands[name]
        self._offered = None

    def get(self, name: str) -> Command | None:
        return self.commands.get(name.lower())

    def __iter__(self) -> Iterator[Command]:
        return iter(sorted(self.commands.values(), key=lambda c: c.name))

    def __len__(self) -> int:
        return len(self.commands)


class PluginRegistry:
    """The registry as one plugin sees it (``register_commands(registry)``, ``bot.registry``):
    what it adds carries its name; it updates and removes only its own commands."""

    def __init__(self, registry: Registry, plugin: str) -> None:
        self._registry = registry
        self.plugin = plugin

    def command(
        self,
        name: str,
        *,
        kind: CmdType = CmdType.GET,
        pri: Pri = Pri.USER,
        help: str = "",
        usage: str = "",
        concurrency: str = "queue",
        hidden: bool = False,
        confirm: bool = False,
        approve: bool = False,
        thread: bool = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register the decorated function (``def`` or ``async def``) as a command.
        ``confirm``: ask the sender for ``yes`` first; ``approve``: another admin or root
        must send ``approve ID`` first; ``thread``: a ``def`` handler always runs in the
        thread pool (one that waits for the event loop must say so)."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            doc = (fn.__doc__ or "").strip().splitlines()
            help_text = help or (doc[0] if doc else "")
            self.add(Command(name, fn, kind, pri, help_text, usage, concurrency, hidden,
                             confirm=confirm, approve=approve, thread=thread))  # fmt: skip
            return fn

        return decorate

    def add(self, command: Command) -> bool:
        """Register ``command`` (imperative form); False if another plugin has the name."""
        return self._registry.add(replace(command, plugin=self.plugin))

    def get(self, name: str) -> Command | None:
        return self._registry.get(name)

    def _own(self, name: str) -> Command:
        command = self._registry.get(name)
        if command is None or command.plugin != self.plugin:
            raise KeyError(f"no command {name!r} of plugin {self.plugin!r}")
        return command

    def update(self, name: str, /, **changes: Any) -> Command:
        """Change fields of one of this plugin's commands (not the plugin it belongs to)."""
        self._own(name)
        changes.pop("plugin", None)
        return self._registry.update(name, **changes)

    def remove(self, name: str) -> Command | None:
        """Unregister one of this plugin's commands; None if it has none of that name."""
        try:
            self._own(name)
        except KeyError:
            return None
        return self._registry.remove(name)


_SPLIT = re.compile(r"\s*[:：]\s*|\s+")


def parse(text: str) -> tuple[str, str | None] | None:
    """Split a chat message into ``(name, extra)``; None when it holds no command.

    Accepted forms: ``name:extra`` (the original form), ``name：extra`` (full-width colon,
    as typed on Chinese keyboards) and ``name extra``. The name is lower-cased;
    surrounding whitespace is dropped; an empty extra is None.
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text:
        return None
    parts = _SPLIT.split(text, maxsplit=1)
    name = parts[0].lower()
    if not NAME_RE.fullmatch(name):
        return None
    extra = parts[1].strip() if len(parts) > 1 else ""
    return name, (extra or None)
