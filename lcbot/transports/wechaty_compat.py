"""Make PyPI ``wechaty`` 0.10.7 import and run on Python 3.10-3.13 with current dependencies.

``wechaty`` 0.10.7 (2022, the last release) and its ``wechaty-puppet`` /
``wechaty-puppet-service`` companions were written against pyee < 12, urllib3 1.x and
Python <= 3.10. Instead of pinning old versions into the user's environment, ``apply()``
patches the few names they rely on, in memory only (no file in site-packages changes).

Call ``apply()`` right before ``import wechaty``. It is idempotent and does not import
``wechaty`` itself (it does import ``wechaty_puppet``, whose dataclass needs fixing before
``wechaty`` is imported).
"""

from __future__ import annotations

import socket
import sys
import types

_applied = False


def apply() -> None:
    """Install every shim; safe to call more than once."""
    global _applied
    if _applied:
        return
    _patch_pyee()
    _patch_urllib3()
    _patch_telnetlib()
    _patch_dataclass_defaults()
    _applied = True


def _patch_pyee() -> None:
    # python-wechaty #422: pyee >= 12 dropped the top-level re-export, so
    # `from pyee import AsyncIOEventEmitter` (wechaty, wechaty-puppet, wechaty-puppet-service)
    # fails with ImportError. The class lives on in `pyee.asyncio`.
    import pyee

    if not hasattr(pyee, "AsyncIOEventEmitter"):
        from pyee.asyncio import AsyncIOEventEmitter

        pyee.AsyncIOEventEmitter = AsyncIOEventEmitter


def _patch_urllib3() -> None:
    # python-wechaty #385: urllib3 2.x removed `urllib3.get_host`, which
    # `wechaty/user/url_link.py` imports. Rebuild it from `urllib3.util.parse_url`.
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

    def __init__(
        self, host: str | None = None, port: int = 0, timeout: float | None = None
    ) -> None:
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
    # wechaty #2493: `telnetlib` was removed in Python 3.13 (PEP 594); wechaty's plugin web
    # port check and wechaty-puppet-service's endpoint ping import `telnetlib.Telnet` only
    # to probe a TCP port. Provide a stand-in module when the real one is missing.
    if "telnetlib" in sys.modules:
        return
    import importlib.util

    if importlib.util.find_spec("telnetlib") is not None:
        # 3.11/3.12: import the real one now, without its DeprecationWarning (an error
        # under `-W error`); wechaty's own import then finds it in sys.modules.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import telnetlib  # noqa: F401
        return
    module = types.ModuleType("telnetlib", "lcbot stand-in: TCP port probe only")
    module.Telnet = _Telnet
    module.TELNET_PORT = 23
    sys.modules["telnetlib"] = module


def _patch_dataclass_defaults() -> None:
    # python-wechaty #422 (3.11 part): since Python 3.11 a dataclass field default must be
    # hashable, else "ValueError: mutable default <class PuppetOptions> for field
    # puppet_options is not allowed" when `wechaty.WechatyOptions` is defined. The default
    # instance is never mutated in place by wechaty, so identity hashing is enough.
    from wechaty_puppet.schemas.puppet import PuppetOptions

    if PuppetOptions.__hash__ is None:
        PuppetOptions.__hash__ = object.__hash__
