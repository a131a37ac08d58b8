"""lcbot: watch and steer long-running jobs from WeChat.

The public plugin API is re-exported here. The names are resolved lazily so that
light CLI commands (``lcbot user list``) do not pay for importing pluggy and the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Alert",
    "Bot",
    "CmdType",
    "Command",
    "CommandError",
    "FileTooLarge",
    "Pri",
    "Setting",
    "__version__",
    "hookimpl",
    "quote",
]

_EXPORTS = {
    "Alert": "lcbot.alerts",
    "Bot": "lcbot.bot",
    "Pri": "lcbot.users",
    "hookimpl": "lcbot.hookspecs",
    "CmdType": "lcbot.commands",
    "Command": "lcbot.commands",
    "CommandError": "lcbot.commands",
    "FileTooLarge": "lcbot.files",
    "Setting": "lcbot.setting",
    "quote": "lcbot.text",
}

if TYPE_CHECKING:  # pragma: no cover
    from lcbot.alerts import Alert
    from lcbot.bot import Bot
    from lcbot.commands import CmdType, Command, CommandError
    from lcbot.files import FileTooLarge
    from lcbot.hookspecs import hookimpl
    from lcbot.setting import Setting
    from lcbot.text import quote
    from lcbot.users import Pri


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lcbot' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
