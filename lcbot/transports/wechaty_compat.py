"""Make PyPI ``wechaty`` 0.10.7 import and run on Python 3.10-3.13 with current dependencies.

``wechaty`` 0.10.7 (2022, the last release) and its ``wechaty-puppet`` /
``wechaty-puppet-service`` companions were written against pyee < 12, urllib3 1.x and
Python <= 3.10. Instead of pinning old versions into the user's environment, ``apply()``
patches the few names they rely on, in memory only (no file in site-packages changes).

Call ``apply()`` right before ``import wechaty``; it is idempotent. It imports
``wechaty_puppet`` and ``wechaty_puppet_service`` but never ``wechaty``: the fixes to
``wechaty.wechaty`` itself run when that module is first imported.

Besides the version fixes, four upstream bugs that break stopping, reconnecting and
running one bot after another in a process are fixed too; each is commented below.

Not patched, but worth knowing: ``import wechaty`` reads ``CACHE_DIR`` at import time
(``./.wechaty`` by default, created in the working directory) for its scheduler's
``job.db``; set it before the import, or pass ``WechatyOptions(scheduler=...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.abc
import importlib.util
import socket
import sys
import types
import warnings
from typing import Any

_applied = False


def apply() -> None:
    """Install every shim; safe to call more than once."""
    global _applied
    if _applied:
        return
    _patch_pyee()
    _patch_urllib3()
    _patch_telnetlib()
    _patch_puppet_options_hash()
    _patch_puppet_service_stop()
    _shield_environment()
    _after_import("wechaty.wechaty", _patch_wechaty_module)
    _applied = True


def _shield_environment() -> None:
    # python-wechaty falls back to generic variables: `get_token()` reads
    # WECHATY_PUPPET_SERVICE_TOKEN, then TOKEN, then token; `get_endpoint()` ENDPOINT and
    # endpoint — so an unrelated TOKEN=… in the environment was sent to the puppet service
    # (and logged). lcbot passes its own endpoint and token in PuppetOptions; nothing is read
    # from the environment behind its back.
    import wechaty_puppet_service.config as config
    import wechaty_puppet_service.puppet as puppet

    for module in (config, puppet):
        module.get_token = _nothing
        module.get_endpoint = _nothing


def _nothing() -> None:
    return None


def _patch_pyee() -> None:
    # python-wechaty #430: pyee >= 12 dropped the top-level re-export, so
    # `from pyee import AsyncIOEventEmitter` (wechaty, wechaty-puppet, wechaty-puppet-service)
    # fails with ImportError. The class lives on in `pyee.asyncio`.
    import pyee

    if not hasattr(pyee, "AsyncIOEventEmitter"):
        from pyee.asyncio import AsyncIOEventEmitter

        pyee.AsyncIOEventEmitter = AsyncIOEventEmitter


def _patch_urllib3() -> None:
    # python-wechaty #419 (and #408, closed by a fix that was never released to PyPI):
    # urllib3 2.x removed `urllib3.get_host`, which `wechaty/user/url_link.py` imports.
    # Rebuild it from `urllib3.util.parse_url`, as urllib3 1.x defined it.
    import urllib3

    if hasattr(urllib3, "get_host"):
        return
    from urllib3.util import parse_url

    def get_host(url: str) -> tuple[str, str | None, int | None]:
        """``(scheme, host, port)`` of ``url``, as urllib3 1.x returned it."""
        parsed = parse_url(url)
        return parsed.scheme or "http", parsed.hostname, parsed.port

    urllib3.get_host = get_host


class _Telnet:
    """Just enough of ``telnetlib.Telnet`` for wechaty's port probes.

    wechaty calls ``Telnet().open(host, port=..., timeout=3)`` and treats ``OSError``
    (``socket.error``) as "nothing listens there". The probe connects and closes at once.
    """

    def __init__(self, host: str | None = None, port: int = 0, timeout: float | None = None):
        self.host = host
        self.port = port
        self.timeout = timeout
        if host is not None:
            self.open(host, port, timeout)

    def open(self, host: str, port: int = 0, timeout: float | None = None) -> None:
        self.host, self.port, self.timeout = host, port or 23, timeout
        with socket.create_connection((host, self.port), timeout):
            pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Telnet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _patch_telnetlib() -> None:
    # No python-wechaty issue found: `telnetlib` was removed in Python 3.13 (PEP 594);
    # wechaty's plugin web port check and wechaty-puppet-service's endpoint ping import
    # `telnetlib.Telnet` only to probe a TCP port. Provide a stand-in when it is missing.
    if "telnetlib" in sys.modules:
        return
    if importlib.util.find_spec("telnetlib") is not None:
        # 3.11/3.12: import the real one now, without its DeprecationWarning (an error
        # under `-W error`); wechaty's own import then finds it in sys.modules.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import telnetlib  # noqa: F401
        return
    module = types.ModuleType("telnetlib", "lcbot stand-in: TCP port probe only")
    module.Telnet = _Telnet
    module.TELNET_PORT = 23
    sys.modules["telnetlib"] = module


def _patch_puppet_options_hash() -> None:
    # python-wechaty #422 and #385, wechaty #2493: since Python 3.11 a dataclass field
    # default must be hashable, else "ValueError: mutable default <class PuppetOptions> for
    # field puppet_options is not allowed" when `wechaty.WechatyOptions` is defined. Identity
    # hashing lets the class be defined; the shared default instance that this leaves is
    # replaced per WechatyOptions below.
    from wechaty_puppet.schemas.puppet import PuppetOptions

    if PuppetOptions.__hash__ is None:
        PuppetOptions.__hash__ = object.__hash__


def _patch_puppet_service_stop() -> None:
    # No upstream issue found; it surfaces as python-wechaty's "The network is not good,
    # the bot will try to restart after 60 seconds" after a clean `await bot.stop()`.
    # PuppetService.stop() asks the server to stop (which ends the event stream) and then
    # closes the channel at once; in about 1 stop out of 3 (any Python version) the close
    # wins, the event-stream reader inside `bot.start()` gets StreamTerminatedError, and
    # the stopped bot sleeps 60 s and restarts itself. Read the stream's end, then close.
    from wechaty_puppet_service.puppet import PuppetService

    if getattr(PuppetService.stop, "_lcbot_compat", False):
        return
    listen_for_event = PuppetService._listen_for_event

    @functools.wraps(listen_for_event)
    async def _listen_for_event(self: Any) -> None:
        self._lcbot_listen_task = asyncio.current_task()
        self._lcbot_listen_done = done = asyncio.Event()
        try:
            await listen_for_event(self)
        finally:
            done.set()

    @functools.wraps(PuppetService.stop)
    async def stop(self: Any) -> None:
        self._event_stream.remove_all_listeners()
        if self._puppet_stub is not None:
            await self._puppet_stub.stop()
            self._puppet_stub = None
        done = getattr(self, "_lcbot_listen_done", None)
        if done is not None and asyncio.current_task() is not self._lcbot_listen_task:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), 5)
        if self.channel:
            self.channel.close()
            self.channel = None

    stop._lcbot_compat = True  # type: ignore[attr-defined]
    PuppetService._listen_for_event = _listen_for_event
    PuppetService.stop = stop


def _patch_wechaty_module(module: types.ModuleType) -> None:
    options_cls: Any = module.WechatyOptions
    wechaty_cls: Any = module.Wechaty
    if getattr(options_cls.__init__, "_lcbot_compat", False):
        return

    # python-wechaty #422 (the hazard that Python 3.11 refuses): every WechatyOptions()
    # shares one default PuppetOptions, and Wechaty / PuppetService write the endpoint and
    # token into it, so a second bot in the process silently reuses the first one's
    # endpoint ("there are two endpoints ... the first one is adopted"). Give each
    # WechatyOptions its own PuppetOptions.
    shared = options_cls.__dataclass_fields__["puppet_options"].default
    options_init = options_cls.__init__

    @functools.wraps(options_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        options_init(self, *args, **kwargs)
        if self.puppet_options is shared:
            self.puppet_options = type(shared)()

    __init__._lcbot_compat = True  # type: ignore[attr-defined]
    options_cls.__init__ = __init__

    # Same family as python-wechaty #285 ("puppet_stub should not be none"): init_puppet()
    # makes fresh Contact/Room/Tag subclasses bound to the new puppet, but they inherit
    # one class-level `_pool`, so `bot.Contact.load(id)` can return an object cached by
    # an earlier (stopped) bot whose puppet is closed. Give every subclass its own pool.
    init_puppet = wechaty_cls.init_puppet

    @functools.wraps(init_puppet)
    async def init_puppet_with_own_pools(self: Any) -> None:
        await init_puppet(self)
        for name in ("Contact", "ContactSelf", "Room", "Tag"):
            cls = getattr(self, name, None)
            if cls is not None and "_pool" not in vars(cls):
                cls._pool = {}

    wechaty_cls.init_puppet = init_puppet_with_own_pools

    # No upstream issue found: after a reconnect, python-wechaty handles the new
    # connection's login by starting its plugin manager again, whose scheduler then raises
    # "Scheduler is already running" ("internal error" in the log), so the bot's 'login'
    # event never fires and `bot.contact_id` is not set. Start the plugin manager once.
    manager_cls: Any = sys.modules["wechaty.plugin"].WechatyPluginManager
    manager_start = manager_cls.start

    @functools.wraps(manager_start)
    async def start_once(self: Any) -> None:
        if not getattr(self, "_lcbot_started", False):
            await manager_start(self)
            self._lcbot_started = True

    manager_cls.start = start_once


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``fix(module)`` right after module ``name`` is executed on first import."""

    def __init__(self, name: str, fix: Any) -> None:
        self.name = name
        self.fix = fix

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_and_fix(module: types.ModuleType) -> None:
            exec_module(module)
            self.fix(module)

        loader.exec_module = exec_and_fix  # this loader instance serves this spec only
        return spec


def _after_import(name: str, fix: Any) -> None:
    module = sys.modules.get(name)
    if module is not None:
        fix(module)
    else:
        sys.meta_path.insert(0, _AfterImport(name, fix))
