"""The audit log: who ran which command, whether it was allowed (and by what), how it ended.

One row per invocation of a known command by a known user: user name and contact id,
command, extra text (cut to ``EXTRA`` characters), ``decision`` (``allowed`` or
``denied``), ``by`` (what decided: ``privilege``, ``authorize: PLUGIN``, ``rate limit``,
``not confirmed``, ``confirmation timed out``, ``approval denied by NAME``, ``approval
expired``, ``no approver``; for allowed runs ``confirmed`` or ``approved by NAME``, else
empty), ``outcome`` (``ok``, ``failed``, ``busy``, ``usage``; none when denied), duration
and transport. ``log`` is cheap and safe from any thread: the row joins the outbox
writer's next commit (``Outbox.record``), like outgoing messages. Retention deletes rows
older than ``[storage] keep``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from lcbot.db import Database
from lcbot.db import audit as sql
from lcbot.db.batches import Expiry

EXTRA = 200  # characters of a command's extra text kept
ALLOWED, DENIED = "allowed", "denied"


class Who(Protocol):
    name: str


class Audit:
    """Writes (any thread) and reads (blocking: worker threads) the audit log."""

    def __init__(
        self,
        db: Database,
        record: Callable[..., None],
        transport: str,
        keep: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._record = record  # Outbox.record: joins the writer's next commit
        self.transport = transport
        self.keep = keep
        self.clock = clock
        self._expiry = Expiry(sql.delete_old)

    def log(
        self,
        user: Who,
        contact: str | None,
        command: str,
        extra: str | None,
        by: str = "",
        outcome: str | None = "ok",
        duration: float = 0.0,
        room: str | None = None,
    ) -> None:
        """Store one invocation: allowed when ``outcome`` is set, else denied ``by``."""
        if extra is not None and len(extra) > EXTRA:
            extra = extra[: EXTRA - 1] + "…"
        decision = DENIED if outcome is None else ALLOWED
        row = (self.clock(), user.name, contact, command, extra, decision, by, outcome,
               duration, self.transport, room)  # fmt: skip
        self._record(sql.insert, row)

    def recent(
        self, limit: int, user: str | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        """The latest ``limit`` rows, newest first (committed ones: within milliseconds)."""
        with self._db.worker() as conn:
            return sql.recent(conn, limit, user, since)

    def expire(self, now: float, limit: int) -> tuple[int, bool]:
        """Retention: delete rows older than ``keep`` (looking at ``limit``)."""
        return self._expiry.step(self._db.conn, now - self.keep, limit)


def line(row: dict[str, Any]) -> str:
    """One row for chat: ``12-01 14:03:05 alice deploy prod: denied (privilege)``."""
    when = time.strftime("%m-%d %H:%M:%S", time.localtime(row["at"]))
    what = row["command"] + (f" {row['extra']}" if row["extra"] else "")
    if row["decision"] == DENIED:
        how = f"denied ({row['by']})"
    else:
        how = row["outcome"] + (f" ({row['by']})" if row["by"] else "")
        how += f" {row['duration']:.1f}s" if row["duration"] >= 0.05 else ""
    return f"{when} {row['user']} {what}: {how}"
