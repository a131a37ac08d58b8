"""The job SDK over HTTP, for a job on another machine (``LCBOT_URL``, ``LCBOT_JOB_TOKEN``).

Standard library only; imported by ``lcbot.joblink`` when a URL is set. Two threads: the
link's thread says ``hello`` and delivers the job's messages as they come (``poll:
false``, so a command's result never waits behind a long poll), and a poller holds one
long poll open for the bot's messages, acknowledging what it got (``ack``) so that an
answer lost on the way is sent again (duplicates are recognised by ``seq``). When the bot
answers ``gone`` (it restarted, or forgot an idle session) the messages of that exchange
are queued again and the job says hello anew. The wire is described in ``lcbot.jobhttp``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

PATH = "/jobs/exchange"
BATCH = 100  # messages in one exchange (the bot's limit)
POLL_TIMEOUT = 40.0  # seconds: the bot holds a poll up to 25 s
SEND_TIMEOUT = 30.0


class HttpClient:
    """The HTTP side of one ``Link``; ``run`` is called on the link's thread (and again
    after an error, with backoff): it returns or raises when the connection failed."""

    def __init__(self, link: Any, encode: Callable[[dict[str, Any]], bytes]) -> None:
        self.link = link  # lcbot.joblink.Link (not imported: no cycle)
        self.encode = encode  # a message → JSON bytes within the size limit
        self.session: str | None = None
        self.seen = 0  # the highest ``seq`` received in this session
        self._lock = threading.Lock()
        self._has_session = threading.Event()
        self._poller: threading.Thread | None = None

    def run(self) -> None:
        link = self.link
        while not link._closing and link.refused is None:
            session = self.session
            if session is None:
                self._deliver(None, [link.hello(), *self._take(BATCH - 1)])
                continue
            if not link._queue:
                link._wake.wait(0.5)
                link._wake.clear()
                continue
            self._deliver(session, self._take(BATCH))

    # --- inside ------------------------------------------------------------------------------

    def _take(self, n: int) -> list[dict[str, Any]]:
        queue, batch = self.link._queue, []
        while queue and len(batch) < n:
            batch.append(queue.popleft())
        return batch

    def _give_back(self, batch: list[dict[str, Any]]) -> None:
        for message in reversed(batch):
            if message.get("op") != "hello":
                self.link._queue.appendleft(message)

    def _deliver(self, session: str | None, batch: list[dict[str, Any]]) -> None:
        from urllib.error import HTTPError

        body = {"session": session, "messages": batch, "poll": session is None}
        try:
            answer = self._post(body, SEND_TIMEOUT)
        except HTTPError as exc:
            if exc.code != 400 or session is None:
                self._give_back(batch)
                raise
            self.link.dropped += len(batch)  # the bot refused them: sending again won't help
            return
        except BaseException:
            self._give_back(batch)  # not taken: sent again
            raise
        if answer.get("gone"):
            self._give_back(batch)
            self._forget(session)
            return
        if session is None:
            self._start(answer)
        if any(m.get("op") == "bye" for m in batch):
            self.link._closing = True  # said goodbye: never hello again

    def _start(self, answer: dict[str, Any]) -> None:
        session = answer.get("session")
        with self._lock:
            if isinstance(session, str):
                self.session, self.seen = session, 0
        self._received(answer, session)
        if isinstance(session, str):
            self._has_session.set()
            if self._poller is None:
                self._poller = threading.Thread(
                    target=self._poll, name="lcbot-job-poll", daemon=True
                )
                self._poller.start()

    def _forget(self, session: str | None) -> None:
        with self._lock:
            if self.session == session:
                self.session = None
                self._has_session.clear()
                self.link.connected.clear()
        self.link._wake.set()

    def _poll(self) -> None:
        link, delay = self.link, 0.2
        while not link._closing and link.refused is None:
            session = self.session
            if session is None:
                self._has_session.wait(1.0)
                continue
            body = {"session": session, "messages": [], "poll": True, "ack": self.seen}
            try:
                answer = self._post(body, POLL_TIMEOUT)
            except Exception:
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.2
            if answer.get("gone"):
                self._forget(session)
            else:
                self._received(answer, session)

    def _received(self, answer: dict[str, Any], session: str | None) -> None:
        with self._lock:
            if session is not None and self.session != session:
                return  # an answer for a session given up meanwhile
            for message in answer.get("messages") or []:
                if not isinstance(message, dict):
                    continue
                seq = message.get("seq")
                if isinstance(seq, int):
                    if seq <= self.seen:
                        continue  # sent again: already handled
                    self.seen = seq
                self.link._received(message)

    def _post(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        link = self.link
        messages = b",".join(self.encode(message) for message in body.pop("messages"))
        data = json.dumps(body).encode()[:-1] + b', "messages": [' + messages + b"]}"
        request = urllib.request.Request(
            f"{link.url}{PATH}",
            data=data,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {link.token or ''}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                link.refused = f"the bot refused this job ({exc.code}): {_reason(exc)}"
            raise
        if not isinstance(answer, dict):
            raise ValueError("the bot's answer is not a JSON object")
        return answer


def _reason(exc: Any) -> str:
    try:
        return str(json.loads(exc.read()).get("error") or exc.reason)[:200]
    except Exception:
        return "wrong job token" if exc.code == 401 else str(exc.reason)
