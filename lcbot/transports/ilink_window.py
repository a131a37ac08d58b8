"""The reply window of one iLink link, and its rate-limit back-off. Pure logic: no I/O, every
time is passed in (unix seconds), so it is tested without a clock.

WeChat accepts messages to a linked user only for a while after the user's last message
(``window``), at most ``max_replies`` of them per message from the user, and never without
the context token of that message. A refusal (``ret=-2``) closes the window until the user
writes again, whatever the counts say; ``errcode -14`` expires the link until a new scan.
A rate limit backs off ``backoff_base`` seconds, doubling, capped at ``backoff_cap``; a
send that goes through resets it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from lcbot.durations import format_duration

BACKOFF_BASE = 30.0
BACKOFF_CAP = 1800.0

# what `state()` answers
OPEN, CLOSED, EXPIRED, NO_MESSAGE = "open", "closed", "expired", "no message yet"


@dataclass(frozen=True)
class Rules:
    """``[ilink]`` window, max_replies and nudge, and the back-off steps."""

    window: float = 86400.0
    max_replies: int = 10
    nudge: float | None = None
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP


@dataclass
class Window:
    """What is known of one link's conversation (persisted in its state file)."""

    context_token: str | None = None
    last_inbound: float | None = None  # when the user last wrote
    replies: int = 0  # messages sent since then
    closed: bool = False  # WeChat refused a send: wait for the user to write
    closed_at: float | None = None  # when the window was seen closed (refusal or budget)
    expired: bool = False  # errcode -14: the link needs a new scan
    backoff: float = 0.0  # the current rate-limit step (0: not rate limited)
    backoff_until: float | None = None
    nudged: bool = False  # the nudge for the current inbound message was queued

    # --- events ----------------------------------------------------------------------------

    def inbound(self, context_token: str | None, now: float) -> None:
        """The user wrote: a new window, a new budget."""
        if context_token:
            self.context_token = context_token
        self.last_inbound = now
        self.replies = 0
        self.closed, self.closed_at, self.nudged = False, None, False

    def sent(self, now: float, rules: Rules) -> None:
        """A message went through: one reply used; the rate-limit back-off is over."""
        self.replies += 1
        self.backoff, self.backoff_until = 0.0, None
        if self.replies >= rules.max_replies and self.closed_at is None:
            self.closed_at = now

    def refused(self, now: float) -> None:
        """WeChat refused a send (window closed or budget used, by its own count)."""
        if not self.closed:
            self.closed, self.closed_at = True, now

    def rate_limited(self, now: float, rules: Rules) -> float:
        """WeChat rate-limits: back off (doubling, capped); returns the seconds to wait."""
        step = rules.backoff_base if self.backoff <= 0 else self.backoff * 2
        self.backoff = min(step, rules.backoff_cap)
        self.backoff_until = now + self.backoff
        return self.backoff

    def session_expired(self) -> bool:
        """The link's session expired; True when it was not known before (tell root once)."""
        new = not self.expired
        self.expired = True
        return new

    # --- questions -------------------------------------------------------------------------

    def state(self, now: float, rules: Rules) -> str:
        """``open``, ``closed``, ``expired`` or ``no message yet``."""
        if self.expired:
            return EXPIRED
        if self.last_inbound is None or not self.context_token:
            return NO_MESSAGE
        if self.closed or self.replies >= rules.max_replies:
            return CLOSED
        if now - self.last_inbound >= rules.window:
            return CLOSED
        return OPEN

    def closed_since(self, now: float, rules: Rules) -> float | None:
        """When the window closed (None while it is open or was never opened)."""
        if self.state(now, rules) != CLOSED:
            return None
        assert self.last_inbound is not None
        by_time = self.last_inbound + rules.window
        if self.closed_at is not None:
            return min(self.closed_at, by_time)
        return by_time

    def hold(self, user: str, now: float, rules: Rules) -> tuple[str, float | None] | None:
        """Why messages to ``user`` wait now, and until when (unix time; None: until the
        user writes or links again); None when one may be sent."""
        state = self.state(now, rules)
        if state == EXPIRED:
            return f"link expired: run `lcbot user link {user}`", None
        if state == NO_MESSAGE:
            return f"no message from {user} yet: waits for {user} to write", None
        if state == CLOSED:
            assert self.last_inbound is not None
            ago = format_duration(max(0.0, now - self.last_inbound))
            if self.replies >= rules.max_replies and not self.closed:
                why = f"reply budget used ({self.replies} messages since {user} wrote {ago} ago)"
            else:
                why = f"reply window closed ({user} last wrote {ago} ago)"
            return f"{why}: waits for {user} to write", None
        if self.backoff_until is not None and now < self.backoff_until:
            left = format_duration(max(1.0, self.backoff_until - now))
            return f"rate limited by WeChat: retrying in {left}", self.backoff_until
        return None

    def allowance(self, now: float, rules: Rules) -> int:
        """Messages that may still be sent before the window closes (0 when held)."""
        if self.hold("", now, rules) is not None:
            return 0
        return max(0, rules.max_replies - self.replies)

    def backoff_left(self, now: float) -> float:
        """Seconds of rate-limit back-off left (0: none)."""
        if self.backoff_until is None:
            return 0.0
        return max(0.0, self.backoff_until - now)

    def wants_nudge(self, now: float, rules: Rules) -> bool:
        """Whether to use one message now to ask the user to write (``[ilink] nudge``):
        once per message from the user, once ``nudge`` has passed, while the window is open."""
        if rules.nudge is None or self.nudged or self.last_inbound is None:
            return False
        if now - self.last_inbound < rules.nudge:
            return False
        return self.allowance(now, rules) >= 1

    # --- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Window:
        """From a state file's fields (unknown ones ignored, bad ones defaulted)."""
        window = cls()
        for f in fields(cls):
            if f.name not in data:
                continue
            value, default = data[f.name], getattr(window, f.name)
            if _fits(value, default, f.name):
                setattr(window, f.name, value)
        return window


def _fits(value: Any, default: Any, name: str) -> bool:
    if name in ("context_token",):
        return value is None or isinstance(value, str)
    if name in ("last_inbound", "closed_at", "backoff_until"):
        return value is None or (isinstance(value, int | float) and not isinstance(value, bool))
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


NUDGE_TEXT = (
    "WeChat lets this bot write to you only for a while after your last message: send "
    "anything (a dot will do) so that alerts keep reaching you."
)
