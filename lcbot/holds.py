"""Holds: the drainer's side of a *gated* transport (``Transport.gated``: iLink's reply
window and rate limit), which takes messages to an address only at times.

Before a send to a recipient the drainer asks ``check``: the transport's ``hold(address)``
names a ``Hold`` (why, and until when) or None. A held recipient is not sent to; its
messages wait — and keep coalescing — until ``Hold.until`` (the drainer's clock, monotonic)
or until the transport calls ``wake()`` (``refresh`` then asks again). A ``Deferred`` from
a send is a hold too: no attempt is counted, no backoff, one INFO line. The hold is
recorded once in the ``holds`` table (through the outbox's writer: ``lcbot outbox list``
and the fallback read it) and logged once; the record goes when a send to that recipient
succeeds again (so a rate limit that lifts and returns keeps its start time), or when a
wake finds it lifted with nothing left to send.

When ``allowance(address) == 1`` — the send about to go is the last the transport permits
before a hold — and more messages wait for the recipient than it carries, its text gets a
last line saying how many (counted in memory and, past the backlog's window, in the
database).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from lcbot.backlog import Backlog
from lcbot.db import holds as sql
from lcbot.message import Feed
from lcbot.transports.base import Address, Hold

log = logging.getLogger("lcbot.drainer")

DEFER_RETRY = 5.0  # seconds: a Deferred whose transport names no hold is tried again after
MIN_RECHECK = 0.5  # seconds: a hold "until" already past is asked again after this


class Gate(Protocol):
    """What a gated transport answers."""

    def hold(self, address: Address) -> Hold | None: ...

    def allowance(self, address: Address) -> int | None: ...


class Ledger(Protocol):
    """Where holds are recorded (the outbox)."""

    def record(self, op: Callable[..., Any], *args: Any) -> None: ...


def waiting_line(count: int | None) -> str:
    """The last line of the last permitted message (``count`` None: "more")."""
    what = "more messages" if count is None else f"{count} message{'s' if count != 1 else ''}"
    return f"— {what} waiting — send anything to receive them"


class Holds:
    """Per recipient: whether a gated transport makes it wait now, and the record of it.

    ``blocked`` is the drainer's ``blocked_until`` (recipient → clock time): a held
    recipient is blocked there until ``Hold.until`` (``inf``: until a wake), so the
    drainer's timing needs no other check.
    """

    def __init__(
        self,
        gate: Gate,
        ledger: Ledger,
        backlog: Backlog,
        blocked: dict[str, float],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.gate = gate
        self.ledger = ledger
        self.backlog = backlog
        self.blocked = blocked
        self.clock = clock
        self.wall = wall
        self.held: dict[str, tuple[Hold, Address]] = {}  # blocked by a hold now
        self.recorded: dict[str, str] = {}  # recipient → reason of its row in `holds`
        self.cleared: set[str] = set()  # known to have no row (this run)
        self.woken = False
        # counts pending rows past the backlog's window (None: only "more" is known)
        self.count_after: Callable[[str, Any], int] | None = getattr(ledger, "pending_after", None)

    # --- the drainer's calls ----------------------------------------------------------------

    def before_send(self, recipient: str, address: Address, text: str, done: int) -> str | None:
        """The text to send to ``recipient`` (``done``: messages this send completes), or
        None: it is held, send nothing."""
        if self.check(recipient, address):
            return None
        if text and self.gate.allowance(address) == 1:
            left = self._left(recipient, done)
            if left is None or left > 0:
                return f"{text}\n{waiting_line(left)}"
        return text

    def check(self, recipient: str, address: Address) -> bool:
        """Whether ``recipient`` is held now (asks the transport)."""
        hold = self.gate.hold(address)
        if hold is None:
            if self.held.pop(recipient, None) is not None:
                self.blocked.pop(recipient, None)  # the record stays until a send succeeds
            return False
        self._hold(recipient, address, hold)
        return True

    def deferred(self, recipient: str, address: Address, exc: Exception) -> None:
        """A send raised ``Deferred``: hold the recipient as the transport says now (or a
        few seconds, when it names no hold). No attempt is counted."""
        hold = self.gate.hold(address)
        if hold is None:
            reason = f"deferred by the transport ({exc})" if str(exc) else "deferred"
            hold = Hold(reason, self.clock() + DEFER_RETRY)
        self._hold(recipient, address, hold, f"a send was deferred: {exc}" if str(exc) else "")

    def sent(self, recipient: str) -> None:
        """A send to ``recipient`` succeeded: its hold (if recorded) is over."""
        if recipient in self.cleared:
            return
        reason = self.recorded.pop(recipient, None)
        self.ledger.record(sql.clear, recipient)  # also a row left by an earlier run
        self.cleared.add(recipient)
        if reason is not None:
            log.info("messages to %s go again (held: %s)", recipient, reason)

    def wake(self) -> None:
        """The transport says a hold may have lifted: ``refresh`` at the next turn."""
        self.woken = True

    def refresh(self) -> None:
        """Ask again for every held recipient (after a wake)."""
        self.woken = False
        for recipient, (_, address) in list(self.held.items()):
            self.check(recipient, address)
        for recipient in list(self.recorded):  # lifted with nothing left to send
            if recipient not in self.held and not self._has_messages(recipient):
                self.sent(recipient)

    def stuck(self, feed: Feed) -> bool:
        """Whether every message left waits for a hold (a stop need not wait for them)."""
        backlog = self.backlog
        if self.woken or feed.ready or feed.backlog or not self.held:
            return False
        return all(r in self.held for r in backlog.queues) and all(
            r in self.held for r in backlog.edges
        )

    # --- inside -------------------------------------------------------------------------------

    def _hold(self, recipient: str, address: Address, hold: Hold, why: str = "") -> None:
        now = self.clock()
        until = float("inf") if hold.until is None else max(hold.until, now + MIN_RECHECK)
        self.blocked[recipient] = until
        self.held[recipient] = (hold, address)
        if self.recorded.get(recipient) == hold.reason:
            return
        self.recorded[recipient] = hold.reason
        self.cleared.discard(recipient)
        self.ledger.record(sql.put, recipient, hold.reason, self.wall())
        log.info("messages to %s wait: %s%s", recipient, hold.reason, f" ({why})" if why else "")

    def _has_messages(self, recipient: str) -> bool:
        return recipient in self.backlog.queues or recipient in self.backlog.edges

    def _left(self, recipient: str, done: int) -> int | None:
        """Messages of ``recipient`` still waiting after a send completing ``done``."""
        left = len(self.backlog.queues.get(recipient, ())) - done
        if recipient not in self.backlog.edges:
            return left
        if self.count_after is None:
            return None
        return left + self.count_after(recipient, self.backlog.edges[recipient])
