"""The one plugin manager: loads built-in, installed and folder plugins; calls hooks through pluggy.

Load order: built-in plugins (``lcbot/builtin``), then installed distributions exposing
the ``lcbot`` entry-point group, then ``.py`` files and packages in each ``[plugins] dirs``
folder. ``LCBOT_LOAD_PLUGINS=a,b`` loads only those installed plugins (empty: none);
``[plugins] disable`` skips any plugin by name.

Each plugin is registered with pluggy as an *adapter*: an object holding, for each of the
plugin's hook implementations, a guard with the same name, signature and ``hookimpl``
options. pluggy orders and calls them as it documents (``tryfirst``, ``trylast``,
``wrapper=True``); the guard gives the implementation this plugin's own ``bot`` and
``registry`` views and applies the hook's error policy (see ``lcbot.hookspecs``):

* ``register_commands``, ``config_schema``, ``lcbot_startup``: the plugin is disabled;
* ``authorize``: that invocation is denied (fail closed);
* ``on_alert``: the alert is restored to what it was; routing goes on;
* ``lcbot_shutdown``: logged.

A plugin that fails to import is marked failed (``lcbot plugins list``); the bot goes on.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from lcbot import hookspecs
from lcbot.commands import Registry
from lcbot.guards import DISABLING, adapt, snapshot
from lcbot.policy import Policy
from lcbot.setting import check_schema

log = logging.getLogger("lcbot.plugins")

ENTRY_POINT_GROUP = "lcbot"
LOAD_ENV = "LCBOT_LOAD_PLUGINS"
BUILTINS = (
    "lcbot.builtin.basics",
    "lcbot.builtin.alerting",
    "lcbot.builtin.firing",
    "lcbot.builtin.rooms",
    "lcbot.builtin.plot",
    "lcbot.builtin.heartbeats",
    "lcbot.builtin.linking",
    "lcbot.builtin.oncall",
    "lcbot.builtin.safety",
)


@dataclass
class PluginRecord:
    """What ``lcbot plugins list`` shows about one plugin."""

    name: str
    source: str  # builtin | entrypoint | dir | test
    version: str | None = None
    location: str = ""
    status: str = "ok"  # ok | failed | disabled
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    errors: int = 0  # hook calls that raised (authorize, on_alert, shutdown)

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
        self.rank: dict[str, int] = {}  # plugin → load order (for command name conflicts)
        self.schemas: dict[str, list[Any]] = {}  # plugin → its config_schema() settings
        self.registry: Registry | None = None
        self.policy = Policy(lambda: self.pm.hook.authorize, log)
        self.on_disable: list[Any] = []  # called with a plugin's name when it is disabled
        self._to_disable: list[tuple[str, BaseException, str]] = []
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
            record = PluginRecord(name, "builtin", location=module_name)
            self._load(record, lambda m=module_name: importlib.import_module(m), external=False)

    def register(self, plugin: Any, name: str, source: str = "builtin") -> None:
        """Register an already imported plugin object (tests, embedding)."""
        record = PluginRecord(name, source, location=repr(plugin))
        self._load(record, lambda: plugin, external=False)

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
            adapter = adapt(self.pm, plugin, record.name, self)
            self.pm.register(adapter, name=record.name)
            self.pm.check_pending()
        except (Exception, SystemExit) as exc:
            if self.pm.get_plugin(record.name) is not None:
                self.pm.unregister(name=record.name)
            self._mark_failed(record, exc, "load")
            return
        self.rank[record.name] = len(self.rank)
        self.policy.changed()
        if record.version is None:
            record.version = getattr(plugin, "__version__", None)
        record.hooks = sorted(c.name for c in self.pm.get_hookcallers(adapter) or ())

    # --- what the guards report (lcbot.guards) -----------------------------------------

    def result(self, plugin: str, hook: str, result: Any) -> Any:
        """A guarded implementation returned ``result`` (a schema is checked here)."""
        if hook == "config_schema":
            self.schemas[plugin] = check_schema(result)
        elif hook == "authorize" and result is False and not getattr(self.policy.denier, "name", 1):
            self.policy.denier.name = plugin  # the first to deny (for the audit log)
        return result

    def failed(self, plugin: str, hook: str, exc: BaseException, args: tuple, saved: Any) -> Any:
        """Apply ``hook``'s error policy; the return value stands in for the result."""
        if hook in DISABLING:
            self._to_disable.append((plugin, exc, hook))
            return None
        record = self.records.get(plugin)
        if record is not None:
            record.errors += 1
        first = record is None or record.errors == 1
        log.error(
            "plugin %s: %s raised %s: %s%s",
            plugin,
            hook,
            type(exc).__name__,
            exc,
            " (denied)" if hook == "authorize" else "",
            exc_info=exc if first else None,  # the traceback once; then one line each
        )
        if hook == "authorize":
            if not getattr(self.policy.denier, "name", 1):
                self.policy.denier.name = plugin
            return False
        if hook == "on_alert" and saved is not None:
            args[0].__dict__.update(saved)  # the alert as it was before this plugin
        return None

    def _disable_failed(self) -> None:
        failed, self._to_disable = self._to_disable, []
        for name, exc, hook in failed:
            self.fail(name, exc, hook)

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
        """Disable plugin ``name``: log, record, unregister, remove its commands."""
        record = self.records.get(name)
        if record is None or record.status == "failed":
            return
        self._mark_failed(record, exc, during)
        if "authorize" in record.hooks:  # its policy cannot be checked any more: fail closed
            self.policy.vetoes.add(name)
            log.error(
                "plugin %s had an authorize hook: commands are denied to everyone but root "
                "users until it loads again",
                name,
            )
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.schemas.pop(name, None)
        self.policy.changed()
        if self.registry is not None:
            self.registry.remove_plugin(name)
        record.commands = []
        for callback in self.on_disable:  # e.g. the scheduler drops the plugin's jobs
            callback(name)

    # --- calling hooks (pm.hook.<name>) -----------------------------------------------

    def register_commands(self, registry: Registry) -> Registry:
        """Let every plugin fill ``registry``; a plugin that raises loses its commands."""
        self.registry = registry
        registry.rank = self.rank
        try:
            self.pm.hook.register_commands(registry=registry)
        except Exception:  # the guards catch the implementations; only pluggy itself is left
            log.exception("register_commands could not be called")
        self._disable_failed()
        for record in self.records.values():
            record.commands = sorted(c.name for c in registry if c.plugin == record.name)
        return registry

    def config_schemas(self) -> dict[str, list[Any]]:
        """Each plugin's ``config_schema()``, by plugin name (section name)."""
        try:
            self.pm.hook.config_schema()
        except Exception:
            log.exception("config_schema could not be called")
        self._disable_failed()
        return dict(self.schemas)

    def on_alert(self, alert: Any) -> bool:
        """Run the ``on_alert`` hooks; False when one suppresses the alert."""
        hook = self.pm.hook.on_alert
        impls = hook.get_hookimpls()
        if not impls:  # the usual case: nothing to call, nothing to restore
            return True
        if not any(impl.wrapper or impl.hookwrapper for impl in impls):
            # plain guards only: each catches (and restores) its own failure, so call them
            # in pluggy's order without pluggy's call machinery or a second snapshot
            kwargs = {"alert": alert}
            results = [impl.function(*[kwargs[a] for a in impl.argnames]) for impl in impls[::-1]]
            return False not in results
        saved = snapshot("on_alert", (alert,))
        try:
            return False not in hook(alert=alert)
        except Exception:
            log.exception("the on_alert hooks could not be called; the alert goes on unchanged")
            alert.__dict__.update(saved)
            return True

    async def startup(self, bot: Any) -> None:
        await self._call_async(self.pm.hook.lcbot_startup, bot)

    async def shutdown(self, bot: Any) -> None:
        await self._call_async(self.pm.hook.lcbot_shutdown, bot)

    async def _call_async(self, caller: Any, bot: Any) -> None:
        try:
            results = caller(bot=bot)
        except Exception:
            log.exception("the %s hooks could not be called", caller.name)
            results = []
        for result in results:
            if inspect.isawaitable(result):
                await result
        self._disable_failed()


def _import_path(name: str, path: Path, package_dir: Path | None) -> types.ModuleType:
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


def load_host(dirs: tuple[Path, ...], disable: tuple[str, ...]) -> PluginHost:
    """A PluginHost with every plugin found loaded."""
    host = PluginHost(dirs, disable)
    host.load_all()
    return host
