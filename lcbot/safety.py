"""The command side's safety parts, built from ``[bot]`` settings: the audit log
(``lcbot.audit``), confirmations and approvals (``lcbot.approval``) and the per-user rate
limit (``lcbot.ratelimit``). The dispatcher uses all three; ``bot.audit`` and
``bot.approvals`` reach the first two."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lcbot.approval import Gate
from lcbot.audit import Audit
from lcbot.db import Database
from lcbot.ratelimit import RateLimit


@dataclass
class Safety:
    audit: Audit
    gate: Gate
    limit: RateLimit | None  # None: no limit (commands_per_minute = 0)

    @classmethod
    def build(
        cls,
        bot: dict[str, Any],
        db: Database,
        record: Callable[..., None],
        put: Callable[..., None],
        transport: str,
        keep: float,
    ) -> Safety:
        """From the ``[bot]`` settings; ``record``/``put``: the outbox's."""
        per_minute = bot["commands_per_minute"]
        return cls(
            Audit(db, record, transport, keep),
            Gate(put, approval_timeout=bot["approval_timeout"]),
            RateLimit(per_minute, bot["rate_limit_root"]) if per_minute else None,
        )
