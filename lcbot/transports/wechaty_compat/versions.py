"""Version shims: PyPI ``wechaty`` 0.10.7 on Python 3.10-3.13 with current pyee and urllib3.

``wechaty`` 0.10.7 (2022, the last release) and its ``wechaty-puppet`` /
``wechaty-puppet-service`` companions were written against pyee < 12, urllib3 1.x and
Python <= 3.10. These patches restore the few names they rely on, in memory only, plus the
per-instance state python-wechaty wrongly shares between bots.
"""

from __future__ import annotations

import functools
import importlib.util
import socket
import sys
import types
import warnings
from typing import Any


def apply() -> None:
    """The shims that must be in place before ``import wechaty``."""
    _patch_pyee()
    _patch_urllib3()
    _patch_telnetlib()
    _patch_puppet_options_hash()
    _shield_environment()


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


def patch_wechaty_module(module: types.ModuleType) -> None:
    """Per-bot state for ``wechaty.wechaty`` (run when that module is imported)."""
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
        for name in ("Contact", "ContactSelf", "Room", "Tag", "Friendship", "RoomInvitation"):
            cls = getattr(self, name, None)
            if cls is not None and "_pool" not in vars(cls):
                cls._pool = {}

    wechaty_cls.init_puppet = init_puppet_with_own_pools

    # No upstream issue found: `RoomInvitation.load(id)` builds the base class, not the
    # bot's subclass bound to its puppet, so `bot.RoomInvitation.load(id).inviter()` (what
    # the 'room-invite' event bridge hands over) raises "puppet not set". Build `cls`.
    invitation_cls: Any = sys.modules["wechaty.user.room_invitation"].RoomInvitation

    def load(cls: Any, room_invitation_id: str) -> Any:
        return cls(room_invitation_id)

    invitation_cls.load = classmethod(load)
