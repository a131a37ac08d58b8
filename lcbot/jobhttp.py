"""Remote jobs over HTTP: the sessions behind ``POST /jobs/exchange`` (``lcbot.ingress``).

A job on another machine (``LCBOT_URL``, ``LCBOT_JOB_TOKEN``) exchanges JSON batches::

    {"session": id | null, "messages": [...], "poll": true, "ack": N}
    → {"session": id | null, "messages": [...], "gone": bool}

``session: null`` with ``hello`` first attaches the job to the hub and returns a random,
unguessable session id, kept with a digest of the token it came with. Each message the bot
sends a session gets a sequence number ``seq`` and stays in the session's bounded queue
until a later exchange acknowledges it (``ack``: the highest ``seq`` received), so an
answer lost on the way is sent again and a job only ever gets its own messages. ``poll``
(default true) takes them, waiting up to ``POLL`` seconds when there are none (a message
ends the wait at once); ``poll: false`` only delivers the job's messages. A session with
no exchange for ``IDLE`` seconds is detached (the hub tells "gone" after its grace); an
unknown id — after a bot restart — answers ``gone: true`` and changes nothing. A wait
ends when the client's connection closes (a job killed), so its idle time starts then. A body
that breaks the limits answers 400 (``BadRequest`` naming the field) and changes nothing.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import itertools
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lcbot.jobhub import JobHub, Session
from lcbot.joblink import MAX_LINE
from lcbot.webhooks import BadRequest

log = logging.getLogger("lcbot.jobs")

POLL = 25.0  # seconds an exchange may wait for the bot's messages
IDLE = 60.0  # seconds without an exchange before a session is detached
MAX_MESSAGES = 100  # messages in one exchange, either way
MAX_QUEUE = 1000  # unacknowledged messages for one job: more and its session ends
MAX_SESSIONS = 512
CHECK = 2.0  # seconds between two looks whether a waiting job's connection closed


@dataclass(eq=False)
class Remote:
    """One attached remote job."""

    id: str
    digest: bytes  # of the token it attached with
    queue: collections.deque[dict[str, Any]] = field(default_factory=collections.deque)
    seq: int = 0
    session: Session | None = None
    waiter: asyncio.Future[None] | None = None
    exchanges: int = 0  # in progress now
    timer: asyncio.TimerHandle | None = None
    ended: bool = False
    said_bye: bool = False

    @property
    def gone(self) -> bool:
        """Ended by the bot (idle, or reading nothing): the job must say hello again."""
        return self.ended and not self.said_bye

    def push(self, message: dict[str, Any]) -> bool:
        """Queue one of the bot's messages (False when the queue is full)."""
        if self.ended:
            return True
        if len(self.queue) >= MAX_QUEUE:
            return False
        self.seq += 1
        self.queue.append({**message, "seq": self.seq})
        self.wake()
        return True

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def acknowledge(self, ack: int) -> None:
        while self.queue and self.queue[0]["seq"] <= ack:
            self.queue.popleft()


class JobExchange:
    """The remote sessions of one bot, on its event loop."""

    def __init__(self, hub: JobHub, poll: float = POLL, idle: float = IDLE) -> None:
        self.hub = hub
        self.poll = poll
        self.idle = idle
        self.remotes: dict[str, Remote] = {}
        self.closing = False

    async def exchange(
        self, body: Any, token: str, gone: Callable[[], bool] | None = None
    ) -> dict[str, Any]:
        """Answer one exchange (``token``: the one the request was authorised with;
        ``gone()``: whether the client closed its connection, which ends a wait)."""
        session_id, messages, poll, ack = parse_exchange(body)
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        if session_id is None:
            return self._attach(messages, digest)
        remote = self.remotes.get(session_id)
        if remote is None or not hmac.compare_digest(remote.digest, digest):
            return {"session": None, "messages": [], "gone": True}
        self._begin(remote)
        try:
            remote.acknowledge(ack)
            self._handle(remote, messages)
            if not poll or remote.ended:
                return {"session": remote.id, "messages": [], "gone": remote.gone}
            if not remote.queue and not self.closing:
                await self._wait(remote, gone)
            return self._answer(remote)
        finally:
            self._end(remote)

    def close(self) -> None:
        """The bot stops: waiting exchanges answer now (the sessions die with the bot)."""
        self.closing = True
        for remote in self.remotes.values():
            remote.wake()

    # --- inside ------------------------------------------------------------------------------

    def _attach(self, messages: list[dict[str, Any]], digest: bytes) -> dict[str, Any]:
        if len(self.remotes) >= MAX_SESSIONS:
            refused = {"op": "refused", "error": "too many jobs connected"}
            return {"session": None, "messages": [refused], "gone": False}
        remote = Remote(secrets.token_urlsafe(24), digest)
        session = self.hub.attach(messages[0], lambda message: self._send(remote, message))
        if isinstance(session, str):
            log.warning("remote job refused: %s", session)
            refused = {"op": "refused", "error": session}
            return {"session": None, "messages": [refused], "gone": False}
        remote.session = session
        self.remotes[remote.id] = remote
        self._begin(remote)
        try:
            self._handle(remote, messages[1:])
            return self._answer(remote)
        finally:
            self._end(remote)

    def _handle(self, remote: Remote, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            if remote.ended:
                return
            assert remote.session is not None
            self.hub.handle(remote.session, message)
            if message["op"] == "bye":
                remote.said_bye = True
                self._finish(remote)

    def _answer(self, remote: Remote) -> dict[str, Any]:
        out = list(itertools.islice(remote.queue, MAX_MESSAGES))
        return {"session": remote.id, "messages": out, "gone": remote.gone}

    async def _wait(self, remote: Remote, gone: Callable[[], bool] | None) -> None:
        remote.wake()  # an older exchange still waiting answers now: this one takes over
        loop = asyncio.get_running_loop()
        waiter = remote.waiter = loop.create_future()
        deadline = loop.time() + self.poll
        try:
            while not waiter.done() and (left := deadline - loop.time()) > 0:
                await asyncio.wait([waiter], timeout=min(CHECK, left))
                if gone is not None and gone():
                    return  # a job killed: its idle time starts now
        finally:
            if remote.waiter is waiter:
                remote.waiter = None

    def _send(self, remote: Remote, message: dict[str, Any]) -> None:
        if not remote.push(message):
            log.warning("remote job %s reads nothing: its session ends", _name(remote))
            self._finish(remote)

    def _begin(self, remote: Remote) -> None:
        remote.exchanges += 1
        if remote.timer is not None:
            remote.timer.cancel()
            remote.timer = None

    def _end(self, remote: Remote) -> None:
        remote.exchanges -= 1
        if remote.exchanges == 0 and not remote.ended:
            loop = asyncio.get_running_loop()
            remote.timer = loop.call_later(self.idle, self._idle, remote)

    def _idle(self, remote: Remote) -> None:
        remote.timer = None
        if remote.exchanges == 0:
            log.info("remote job %s: no exchange for %.0f s", _name(remote), self.idle)
            self._finish(remote)

    def _finish(self, remote: Remote) -> None:
        """The session ends: detached from the hub, its id forgotten."""
        if remote.ended:
            return
        remote.ended = True
        if remote.timer is not None:
            remote.timer.cancel()
        self.remotes.pop(remote.id, None)
        remote.wake()
        if remote.session is not None:
            self.hub.detach(remote.session)


def parse_exchange(body: Any) -> tuple[str | None, list[dict[str, Any]], bool, int]:
    """``(session, messages, poll, ack)`` of an exchange body; ``BadRequest`` names the
    field that breaks the rules."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = set(body) - {"session", "messages", "poll", "ack"}
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0][:40]!r}")
    session = body.get("session")
    if session is not None and (not isinstance(session, str) or not 0 < len(session) <= 64):
        raise BadRequest("session: expected a session id (a string) or null")
    messages = body.get("messages", [])
    if not isinstance(messages, list):
        raise BadRequest("messages: expected a list of JSON objects")
    if len(messages) > MAX_MESSAGES:
        raise BadRequest(f"messages: at most {MAX_MESSAGES} per exchange, got {len(messages)}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            raise BadRequest(f"messages[{i}]: expected a JSON object with an op (text)")
        size = len(json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if size > MAX_LINE:
            raise BadRequest(f"messages[{i}]: {size} bytes, more than {MAX_LINE}")
    poll = body.get("poll", True)
    if not isinstance(poll, bool):
        raise BadRequest("poll: expected true or false")
    ack = body.get("ack", 0)
    if isinstance(ack, bool) or not isinstance(ack, int) or ack < 0:
        raise BadRequest("ack: expected a whole number ≥ 0")
    if session is None and (not messages or messages[0]["op"] != "hello"):
        raise BadRequest("messages[0]: a new session starts with a hello message")
    return session, messages, poll, ack


def _name(remote: Remote) -> str:
    return remote.session.name if remote.session is not None else "?"
