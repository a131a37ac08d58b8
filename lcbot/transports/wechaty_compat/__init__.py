"""Make PyPI ``wechaty`` 0.10.7 run on Python 3.10-3.13 and keep a real WeChat login.

``apply()`` patches python-wechaty and its puppet companions in memory only (no file in
site-packages changes): ``versions`` restores what current Python, pyee and urllib3 removed
and gives each bot its own state; ``session`` keeps the login across connections (no Stop,
ever) and survives what wechaty-puppet 1.x sends. Each patch names the upstream issue it
works around, and has a test that fails without it.

Call ``apply()`` right before ``import wechaty``; it is idempotent. It imports
``wechaty_puppet`` and ``wechaty_puppet_service`` but never ``wechaty``: the fixes to
``wechaty.wechaty`` itself run when that module is first imported.

Not patched, but worth knowing: ``import wechaty`` reads ``CACHE_DIR`` at import time
(``./.wechaty`` by default, created in the working directory) for its scheduler's
``job.db``; set it before the import, or pass ``WechatyOptions(scheduler=...)``.
"""

from __future__ import annotations

import importlib.abc
import sys
import types
from typing import Any

from lcbot.transports.wechaty_compat import session, versions
from lcbot.transports.wechaty_compat.versions import _Telnet

__all__ = ["_Telnet", "apply"]

_applied = False


def apply() -> None:
    """Install every shim; safe to call more than once."""
    global _applied
    if _applied:
        return
    versions.apply()
    session.apply()
    _after_import("wechaty.wechaty", _patch_wechaty_module)
    _applied = True


def _patch_wechaty_module(module: types.ModuleType) -> None:
    versions.patch_wechaty_module(module)
    session.patch_wechaty_module(module)


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
