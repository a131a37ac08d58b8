"""Exceptions that the CLI turns into a message on stderr and an exit code."""

from __future__ import annotations


class LcbotError(Exception):
    """Base class. ``exit_code`` follows the CLI contract: 1 runtime failure, 2 bad input."""

    exit_code = 1


class ConfigError(LcbotError):
    """lcbot.toml is missing, is not valid TOML, or holds a value of the wrong kind."""

    exit_code = 2


class UsageError(LcbotError):
    """The command line asks for something that cannot be done (unknown user, …)."""

    exit_code = 2
