"""The one plugin manager: loads built-in, installed and folder plugins, and calls hooks safely.

Load order (which is also hook call order): built-in plugins (``lcbot/builtin``), then
installed distributions exposing the ``lcbot`` entry-point group, then ``.py`` files and
packages in each ``[plugins] dirs`` folder. ``LCBOT_LOAD_PLUGINS=a,b`` loads only those
installed plugins (empty: none); ``[plugins] disable`` skips any plugin by name.

A plugin that fails to import, or whose hook raises, is logged with its name and
traceback, marked failed (see ``lcbot plugins list``) and unregistered; the bot goes on.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from lcbot import hookspecs
from lcbot.commands import Registry

log = logging.getLogger("lcbot.plugins")

ENTRY_POINT_GROUP = "lcbot"
LOAD_ENV = "LCBOT_LOAD_PLUGINS"
BUILTINS = ("lcbot.builtin.basics", "lcbot.builtin.alerting")


@dataclass
class PluginRecord:
    """What ``lcbot plugins list`` shows about one plugin."""

    name: str
    source: str  # builtin | entrypoint | dir
    version: str | None = None
    location: str = ""
    status: str = "ok"  # ok | failed | disabled
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "version": self.version,
            "location": self.location,
            "status": self.status,
            "error": self.error,
            "hooks": self.hooks,
            "commands": self.commands,
        }


class PluginHost:
    """Owns the pluggy PluginManager and the record of every plugin found."""

    def __init__(self, dirs: tuple[Path, ...] = (), disable: tuple[str, ...] = ()) -> None:
        self.pm = pluggy.PluginManager("lcbot")
        self.pm.add_hookspecs(hookspecs)
        self.dirs = dirs
        self.disable = set(disable)
        self.records: dict[str, PluginRecord] = {}
        self.registry: Registry | None = None
        self._impls: dict[str, list[tuple[str, Any]]] = {}  # cleared on every (un)register
        allow = os.environ.get(LOAD_ENV)
        self.allow = None if allow is None else {a.strip() for a in allow.split(",") if a.strip()}

    # --- loading ---------------------------------------------------------------------

    def load_all(self) -> None:
        """Find and register every plugin, recording failures instead of raising."""
        self.load_builtins()
        self._load_entry_points()
        for folder in self.dirs:
            self._load_folder(folder)

    def load_builtins(self) -> None:
        """Register only the built-in plugins (tests and embedding add their own)."""
        for module_name in BUILTINS:
            name = module_name.rsplit(".", 1)[-1]
            self._load(
                PluginRecord(name, "builtin", location=module_name),
                lambda m=module_name: importlib.import_module(m),
                external=False,
            )

    def register(self, plugin: Any, name: str, source: str = "builtin") -> None:
        """Register an already imported plugin object (tests, embedding)."""
        self._load(
            PluginRecord(name, source, location=repr(plugin)), lambda: plugin, external=False
        )

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            record = PluginRecord(
                ep.name, "entrypoint", version=dist and dist.version, location=ep.value
            )
            self._load(record, ep.load)

    def _load_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            log.debug("plugin folder %s does not exist", folder)
            return
        for path in sorted(folder.iterdir()):
            if path.name.startswith(("_", ".")):
                continue
            if path.suffix == ".py" and path.is_file():
                record = PluginRecord(path.stem, "dir", location=str(path))
                self._load(record, lambda p=path: _import_path(p.stem, p, None), external=False)
            elif path.is_dir() and (path / "__init__.py").is_file():
                record = PluginRecord(path.name, "dir", location=str(path))
                self._load(
                    record,
                    lambda p=path: _import_path(p.name, p / "__init__.py", p),
                    external=False,
                )

    def _load(self, record: PluginRecord, importer, external: bool = True) -> None:
        if record.name in self.records:
            first = self.records[record.name]
            record.status = "failed"
            record.error = f"name {record.name!r} is already used by {first.location}"
            log.error("plugin %s (%s) not loaded: %s", record.name, record.location, record.error)
            self.records[f"{record.name} ({record.location})"] = record
            return
        self.records[record.name] = record
        if record.name in self.disable or (
            external and self.allow is not None and record.name not in self.allow
        ):
            record.status = "disabled"
            return
        try:
            plugin = importer()
            self._impls.clear()
            self.pm.register(plugin, name=record.name)
            self.pm.check_pending()
        except (Exception, SystemExit) as exc:
            if self.pm.get_plugin(record.name) is not None:
                self.pm.unregister(name=record.name)
            self._mark_failed(record, exc, "load")
            return
        if record.version is None:
            record.version = getattr(plugin, "__version__", None)
        record.hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or ())

    def _mark_failed(self, record: PluginRecord, exc: BaseException, during: str) -> None:
        record.status = "failed"
        record.error = f"{during}: {type(exc).__name__}: {exc}"
        log.error(
            "plugin %s failed during %s and is disabled:\n%s",
            record.name,
            during,
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip(),
        )

    def fail(self, name: str, exc: BaseException, during: str) -> None:
        """Disable plugin ``name`` after its hook raised: log, record, unregister."""
        record = self.records.get(name)
        if record is None or record.status == "failed":
            return
        self._mark_failed(record, exc, during)
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self._impls.clear()
        if self.registry is not None:
            self.registry.remove_plugin(name)
            record.commands = []

    # --- calling hooks -----------------------------------------------------------------

    def implementations(self, hook: str) -> list[tuple[str, Any]]:
        """``(plugin name, impl)`` for each implementation of ``hook``, in load order (cached)."""
        impls = self._impls.get(hook)
        if impls is None:
            caller = getattr(self.pm.hook, hook)
            impls = self._impls[hook] = [(i.plugin_name, i) for i in caller.get_hookimpls()]
        return impls

    def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call every implementation; failures disable the plugin. Returns non-None results."""
        results = []
        for name, impl in self.implementations(hook):
            try:
                result = impl.function(*[kwargs[arg] for arg in impl.argnames])
            except (Exception, SystemExit) as exc:
                self.fail(name, exc, hook)
                continue
            if result is not None:
                results.append(result)
        return results

    async def acall(self, hook: str, **kwargs: Any) -> list[Any]:
        """Like ``call``, for hooks that may be ``async def`` (startup, shutdown)."""
        results = []
        for name, impl in self.implementations(hook):
            try:
                result = impl.function(*[kwargs[arg] for arg in impl.argnames])
                if inspect.isawaitable(result):
                    result = await result
            except (Exception, SystemExit) as exc:
                self.fail(name, exc, hook)
                continue
            if result is not None:
                results.append(result)
        return results

    def register_commands(self, registry: Registry) -> Registry:
        """Let each plugin fill ``registry``; a plugin that raises loses all its commands."""
        self.registry = registry
        for name, impl in self.implementations("register_commands"):
            registry.plugin = name
            before = set(registry.commands)
            try:
                impl.function(*[{"registry": registry}[a] for a in impl.argnames])
            except (Exception, SystemExit) as exc:
                for added in set(registry.commands) - before:
                    del registry.commands[added]
                self.fail(name, exc, "register_commands")
            finally:
                registry.plugin = ""
        for record in self.records.values():
            record.commands = sorted(c.name for c in registry if c.plugin == record.name)
        return registry


def _import_path(name: str, path: Path, package_dir: Path | None) -> ModuleType:
    """Import a folder plugin under a private module name (never shadows real modules)."""
    module_name = f"_lcbot_plugin_{name}"
    spec = importlib.util.spec_from_file_location(
        module_name,
        path,
        submodule_search_locations=[str(package_dir)] if package_dir else None,
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def load_host(config: Any) -> PluginHost:
    """A PluginHost with every plugin of ``config`` loaded."""
    host = PluginHost(config.plugins.dirs, config.plugins.disable)
    host.load_all()
    return host
