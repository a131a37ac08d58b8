"""Confirmations and two-person approval of commands (``confirm=True``, ``approve=True``).

*Confirm*: the sender is asked ``send yes within 60 s to run …``; their next message is the
answer: ``yes`` runs the command, anything else cancels it (they are told), and so does
silence past the limit. ``quit`` always asks.

*Approve*: the request gets a short id and is announced to every reachable admin and root
but the sender; one of them sends ``approve ID`` (it runs, the sender is told by whom) or
``deny ID`` within ``[bot] approval_timeout`` (default 10 min), else it expires (the
sender is told). The sender cannot approve their own request. A command that needs both
is confirmed first, then waits for approval. Requests live in memory: a restart drops
them (the audit log keeps the outcome of each).

The ``Gate`` is given how to tell people (``say``); the dispatcher gives it how to run a
request (``run``), who may approve (``approvers``) and how to audit a refusal
(``refused``), and calls ``sweep`` each second to end what timed out.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lcbot.commands import CmdType, Invocation
from lcbot.text import quote
from lcbot.users import Pri, User

CONFIRM_SECONDS = 60.0
APPROVAL_SECONDS = 600.0


@dataclass
class Request:
    """One invocation waiting for its sender's ``yes`` or for another admin's approval."""

    invocation: Invocation
    reply_to: str
    contact: str | None
    deadline: float
    id: str = ""
    by: str = ""  # how it got through so far: "confirmed", "approved by NAME"

    @property
    def what(self) -> str:
        command, extra = self.invocation.command, self.invocation.extra
        return command.name + (f" {quote(extra, 100)}" if extra else "")


def _minutes(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


class Gate:
    """Requests waiting for a ``yes`` or an approval. Used on the event loop only."""

    def __init__(
        self,
        say: Callable[..., None],
        approval_timeout: float = APPROVAL_SECONDS,
        confirm_timeout: float = CONFIRM_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.say = say  # the outbox's put(recipient, text, kind="reply")
        self.approval_timeout = approval_timeout
        self.confirm_timeout = confirm_timeout
        self.clock = clock
        # set by the dispatcher: who may approve a sender's request, how to run a request
        # that got through, how to audit one that did not (request, why)
        self.approvers: Callable[[User], list[User]] = lambda sender: []
        self.run: Callable[[Request], Awaitable[None]] | None = None
        self.refused: Callable[[Request, str], None] = lambda request, why: None
        self.confirming: dict[str, Request] = {}  # by sender name
        self.approving: dict[str, Request] = {}  # by id
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    # --- confirmation ----------------------------------------------------------------------

    def ask(self, request: Request) -> None:
        """Ask the sender to confirm (their next message answers)."""
        request.deadline = self.clock() + self.confirm_timeout
        user = request.invocation.user.name
        if (earlier := self.confirming.pop(user, None)) is not None:
            self.refused(earlier, "not confirmed")
        self.confirming[user] = request
        command = request.invocation.command
        what = "stop the bot" if command.kind is CmdType.QUIT else f"run {request.what}"
        self.say(request.reply_to, f"send yes within {self.confirm_timeout:.0f} s to {what}")

    def answer(self, user: User, text: str) -> Request | bool:
        """``user`` sent ``text`` while a confirmation may be waiting: the request to go on
        with (``yes``), True when the message was the answer (cancelled), False when no
        question was open (handle the message as usual)."""
        request = self.confirming.pop(user.name, None)
        if request is None:
            return False
        if self.clock() > request.deadline:
            self._timed_out(request)
            return False
        if text.strip().lower() == "yes":
            request.by = "confirmed"
            return request
        self.say(request.reply_to, f"cancelled: {request.what} (not confirmed)")
        self.refused(request, "not confirmed")
        return True

    def _timed_out(self, request: Request) -> None:
        self.say(
            request.reply_to,
            f"cancelled: {request.what} (no yes within {self.confirm_timeout:.0f} s)",
        )
        self.refused(request, "confirmation timed out")

    # --- approval --------------------------------------------------------------------------

    def request_approval(self, request: Request) -> None:
        """Announce ``request`` to the admins and roots who may approve it."""
        sender = request.invocation.user
        approvers = [u for u in self.approvers(sender) if u.name != sender.name]
        if not approvers:
            self.say(request.reply_to, f"not run: {request.what} needs another admin's approval")
            self.refused(request, "no approver")
            return
        request.id = str(next(self._ids))
        request.deadline = self.clock() + self.approval_timeout
        self.approving[request.id] = request
        limit = _minutes(self.approval_timeout)
        for approver in approvers:
            self.say(
                approver.name,
                f"approval #{request.id}: {sender.name} asks to run {request.what} — "
                f"send approve {request.id} or deny {request.id} within {limit}",
                "notice",
            )
        names = ", ".join(u.name for u in approvers)
        self.say(request.reply_to, f"waiting for approval #{request.id} ({names}; {limit})")

    def approve(self, request_id: str, approver: User) -> tuple[str, Request | None]:
        """``approve ID`` from ``approver`` (on the event loop): the answer, and the request
        now running (None if refused)."""
        request, problem = self._find(request_id, approver)
        if request is None:
            return problem, None
        del self.approving[request.id]
        request.by = f"approved by {approver.name}"
        self.say(request.reply_to, f"approved by {approver.name}: {request.what}")
        if self.run is not None:
            task = asyncio.ensure_future(self.run(request))  # after the approver's answer
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return f"approved #{request.id}: {request.what} runs now", request

    def deny(self, request_id: str, approver: User) -> str:
        """``deny ID`` from ``approver``; the answer."""
        request, problem = self._find(request_id, approver, deny=True)
        if request is None:
            return problem
        del self.approving[request.id]
        self.say(request.reply_to, f"denied by {approver.name}: {request.what} (not run)")
        self.refused(request, f"approval denied by {approver.name}")
        return f"denied #{request.id}: {request.what}"

    def _find(
        self, request_id: str, approver: User, deny: bool = False
    ) -> tuple[Request | None, str]:
        key = request_id.strip().lstrip("#")
        request = self.approving.get(key)
        if request is not None and self.clock() > request.deadline:
            self.sweep()
            request = None
        if request is None:
            return None, f"no approval #{quote(key, 16)} waiting (see approvals)"
        if approver.pri > Pri.ADMIN:
            return None, "only an admin or root may approve or deny"
        if approver.name == request.invocation.user.name and not deny:
            return None, "you cannot approve your own request: another admin or root must"
        return request, ""

    def listing(self) -> list[str]:
        """One line per request waiting for approval."""
        now = self.clock()
        return [
            f"#{r.id} {r.invocation.user.name}: {r.what} ({_minutes(r.deadline - now)} left)"
            for r in self.approving.values()
        ]

    # --- time ------------------------------------------------------------------------------

    def sweep(self) -> None:
        """End confirmations and approvals whose time is up (the sender is told)."""
        now = self.clock()
        for user, request in list(self.confirming.items()):
            if now > request.deadline:
                del self.confirming[user]
                self._timed_out(request)
        for key, request in list(self.approving.items()):
            if now > request.deadline:
                del self.approving[key]
                limit = _minutes(self.approval_timeout)
                self.say(request.reply_to, f"expired: approval #{key} for {request.what} ({limit})")
                self.refused(request, "approval expired")
