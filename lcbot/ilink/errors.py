"""ILinkError: a failed iLink call, classified (rate limited, refused, session expired).

Standard library only, so the CDN module and the API client share it without a cycle;
``lcbot.ilink.api`` re-exports it.
"""

from __future__ import annotations

RATE_LIMITED_RET = -2
SESSION_EXPIRED = -14


class ILinkError(Exception):
    """A call the service refused or that failed. ``str()`` names the call and the answer,
    never the bot token: ``sendmessage: ret=-2 errmsg=rate limited``."""

    def __init__(
        self,
        call: str,
        *,
        ret: int | None = None,
        errcode: int | None = None,
        errmsg: str = "",
        status: int | None = None,
    ) -> None:
        self.call = call
        self.ret = ret
        self.errcode = errcode
        self.errmsg = errmsg
        self.status = status
        super().__init__(self._text())

    def _text(self) -> str:
        parts = [f"{self.call}:"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.ret is not None:
            parts.append(f"ret={self.ret}")
        if self.errcode is not None:
            parts.append(f"errcode={self.errcode}")
        if self.errmsg:
            parts.append(f"errmsg={self.errmsg}")
        return " ".join(parts)

    @property
    def rate_limited(self) -> bool:
        """``ret=-2`` with "rate limit" in the message: back off, try again later."""
        return self.ret == RATE_LIMITED_RET and "rate limit" in self.errmsg.lower()

    @property
    def refused(self) -> bool:
        """Any other ``ret=-2``: the reply window is closed or the replies of the last inbound
        message are used up; it opens again when the user writes."""
        return self.ret == RATE_LIMITED_RET and not self.rate_limited

    @property
    def session_expired(self) -> bool:
        """``errcode`` (or ``ret``) ``-14``: the link needs a new scan."""
        return SESSION_EXPIRED in (self.errcode, self.ret)
