"""Who may run what: the ``authorize`` hooks' combined vote, else the privilege rule.

``Policy`` is owned by the plugin host (``host.policy``). It fails closed: a hook that
raises denies that invocation, and while a plugin that had an ``authorize`` hook is
disabled, everyone but root is denied. Questions asked without ``extra`` (``help``, who
is told about a SET) are answered once per user and command and kept for ``VERDICT_TTL``
seconds, so a notice to 99 people does not call every hook 99 times per SET.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from lcbot.users import Pri

VERDICT_TTL = 1.0  # seconds an answer to "may USER run COMMAND" (no extra) is kept
VERDICTS = 10_000  # answers kept at most (then forgotten at once)


class Policy:
    def __init__(self, hook: Callable[[], Any], log: Any) -> None:
        self.hook = hook  # () → the PluginManager's ``authorize`` hook caller
        self.log = log
        self.vetoes: set[str] = set()  # disabled plugins that had an authorize hook
        self.denier = threading.local()  # .name: the plugin whose authorize denied
        self._has_authorize: bool | None = None
        self._verdicts: dict[tuple, tuple[bool, float]] = {}
        self._lists: dict[tuple, tuple[list[Any], list[Any], float]] = {}

    def changed(self) -> None:
        """Plugins were loaded or disabled: forget what was worked out."""
        self._has_authorize = None
        self._verdicts.clear()
        self._lists.clear()

    @property
    def has_authorize(self) -> bool:
        if self._has_authorize is None:
            self._has_authorize = bool(self.vetoes) or bool(self.hook().get_hookimpls())
        return self._has_authorize

    def authorize(self, user: Any, command: Any, extra: str | None) -> bool | None:
        """The plugins' combined vote: False if any denies, True if any allows, else None.
        A disabled plugin that had an authorize hook denies everyone but root."""
        if self.vetoes and user.pri is not Pri.ROOT:
            return False
        try:
            votes = self.hook()(user=user, command=command, extra=extra)
        except Exception:
            self.log.exception("an authorize hook wrapper raised; denied")
            return False
        if False in votes:
            return False
        return True if True in votes else None

    def denial(self, user: Any, command: Any, extra: str | None) -> str | None:
        """What denies ``user`` to run ``command`` (``privilege``, ``authorize: PLUGIN``), or
        None when they may (the audit log's "denied by")."""
        if self.has_authorize:
            if self.vetoes and user.pri is not Pri.ROOT:
                return f"authorize: {min(self.vetoes)} (disabled)"
            self.denier.name = ""
            vote = self.authorize(user, command, extra)
            if vote is not None:
                return None if vote else f"authorize: {self.denier.name or 'a hook wrapper'}"
        return None if user.pri <= command.pri else "privilege"

    def allowed(self, user: Any, command: Any, extra: str | None) -> bool:
        """Whether ``user`` may run ``command``: the plugins' vote, else the privilege rule
        (without ``extra``: the answer kept for ``VERDICT_TTL`` seconds)."""
        if not self.has_authorize:
            return user.pri <= command.pri
        if extra is not None or self.vetoes:
            vote = self.authorize(user, command, extra)
            return user.pri <= command.pri if vote is None else vote
        key = (user.name, user.pri, command.name, command.pri, command.plugin)
        now = time.monotonic()
        kept = self._verdicts.get(key)
        if kept is not None and kept[1] > now:
            return kept[0]
        vote = self.authorize(user, command, None)
        verdict = user.pri <= command.pri if vote is None else vote
        if len(self._verdicts) >= VERDICTS:
            self._verdicts.clear()
        self._verdicts[key] = (verdict, now + VERDICT_TTL)
        return verdict

    def allowed_users(self, users: list[Any], command: Any, extra: str | None) -> list[Any]:
        """The users among ``users`` that may run ``command`` (one call for many users;
        without ``extra``, the answer for one list object is kept like ``allowed``'s and
        shared: do not change it)."""
        if not self.has_authorize:
            least = command.pri
            return [u for u in users if u.pri <= least]
        if extra is not None or self.vetoes:
            return [u for u in users if self.allowed(u, command, extra)]
        key = (id(users), command.name, command.pri, command.plugin)
        now = time.monotonic()
        kept = self._lists.get(key)
        if kept is not None and kept[0] is users and kept[2] > now:
            return kept[1]
        allowed = [u for u in users if self.allowed(u, command, None)]
        if len(self._lists) >= VERDICTS:
            self._lists.clear()
        self._lists[key] = (users, allowed, now + VERDICT_TTL)
        return allowed
