"""The job SDK's side of the wire: finding the bot, one daemon thread, bounded buffers.

Standard library only (``import lcbot.job`` must stay light and safe in any program). The
protocol is newline-delimited JSON objects (``op`` names the message, at most
``MAX_LINE`` bytes each), over the bot's local socket ``<data_dir>/jobs.sock`` (0600: no
token, nothing on the network) or, for a job on another machine, over HTTP: ``POST
LCBOT_URL/jobs/exchange`` with the job token, which carries the job's messages and returns
the bot's (long poll). Nothing here ever raises into, blocks or crashes the host program:
when the bot is down, slow or restarting, messages wait in a bounded buffer (the oldest
progress and metrics are dropped first) and the thread reconnects with backoff.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket
    from pathlib import Path

MAX_LINE = 64 * 1024  # bytes in one message, either way
BUFFER = 1000  # messages kept while the bot is unreachable
SOCKET_NAME = "jobs.sock"
URL_ENV, TOKEN_ENV, CONFIG_ENV = "LCBOT_URL", "LCBOT_JOB_TOKEN", "LCBOT_CONFIG"
DROPPABLE = ("progress", "metric", "status", "output")  # superseded by later ones


def find_socket(config: str | os.PathLike[str] | None = None) -> Path:
    """``<data_dir>/jobs.sock`` of the bot configured by ``config``, ``$LCBOT_CONFIG`` or
    ``./lcbot.toml`` (``[bot] data_dir``, relative to that file; ``.lcbot`` by default)."""
    from pathlib import Path  # here, not at import: `import lcbot.job` stays light

    path = Path(config or os.environ.get(CONFIG_ENV) or "lcbot.toml").expanduser()
    data_dir = Path(".lcbot")
    try:
        text = path.read_text(encoding="utf-8")
        data_dir = Path(_toml_loads(text).get("bot", {}).get("data_dir", ".lcbot"))
    except (OSError, ValueError):
        pass
    if not data_dir.is_absolute():
        data_dir = path.resolve().parent / data_dir.expanduser()
    return data_dir / SOCKET_NAME


def _toml_loads(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10: lcbot depends on tomli there
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(text)


class Link(threading.Thread):
    """The job's connection to the bot, on one daemon thread.

    ``send(message)`` queues (never blocks); ``hello()`` is re-sent on every (re)connect;
    ``on_message(message)`` is called on this thread for what the bot sends.
    """

    def __init__(
        self,
        hello: Callable[[], dict[str, Any]],
        on_message: Callable[[dict[str, Any]], None],
        socket_path: Path | None = None,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(name="lcbot-job", daemon=True)
        self.hello = hello
        self.on_message = on_message
        self.socket_path = socket_path
        self.url = url.rstrip("/") if url else None
        self.token = token
        self.connected = threading.Event()
        self.refused: str | None = None  # why the bot refused this job (then it gives up)
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._wake_fd: int | None = None  # the wake-up pipe of a socket connection
        self._unsent = 0  # bytes taken from the queue, not yet written
        self._closing = False
        self._sock: socket.socket | None = None
        self._http: Any = None  # lcbot.jobremote.HttpClient, made on first use
        self.dropped = 0

    # --- what the job calls --------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        queue = self._queue
        if len(queue) >= BUFFER:
            self._drop_one()
        queue.append(message)
        self._poke()

    def close(self, timeout: float = 2.0) -> None:
        """Flush what is queued (for up to ``timeout``), then disconnect."""
        deadline = time.monotonic() + timeout
        if self.refused is None:  # still connecting (the bot starts, or restarts): wait a bit
            self.connected.wait(timeout)
        while (self._queue or self._unsent) and self.connected.is_set():
            if time.monotonic() > deadline:
                break
            self._poke()
            time.sleep(0.01)
        self._closing = True
        self._poke()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(2)  # socket.SHUT_RDWR

    def _poke(self) -> None:
        """Wake the thread: now for a socket connection, at its next turn for HTTP."""
        self._wake.set()
        fd = self._wake_fd
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, b"x")

    def _drop_one(self) -> None:
        for i, message in enumerate(self._queue):
            if message.get("op") in DROPPABLE:
                del self._queue[i]
                self.dropped += 1
                return
        self._queue.popleft()
        self.dropped += 1

    # --- the thread ----------------------------------------------------------------------

    def run(self) -> None:
        delay = 0.2
        while not self._closing and self.refused is None:
            started = time.monotonic()
            try:
                if self.url:
                    self._run_http()
                else:
                    self._run_socket()
            except Exception:  # never into the host program: reconnect
                pass
            self.connected.clear()
            if self._closing or self.refused is not None:
                return
            if time.monotonic() - started > 30:
                delay = 0.2
            self._wake.wait(delay)
            self._wake.clear()
            delay = min(delay * 2, 10.0)

    def _run_socket(self) -> None:
        """One thread reads and writes: ``select`` on the socket and a wake-up pipe."""
        import selectors
        import socket

        assert self.socket_path is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(str(self.socket_path))
        sock.sendall(_line(self.hello()))
        sock.setblocking(False)
        self._sock = sock
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        self._wake_fd = wake_w
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        buffer, pending = b"", b""
        try:
            while not self._closing:
                while self._queue and len(pending) < 1 << 20:
                    pending += _line(self._queue.popleft())
                if pending:
                    with contextlib.suppress(BlockingIOError):
                        pending = pending[sock.send(pending) :]
                self._unsent = len(pending)
                events = selector.select(0.05 if pending else 1.0)
                for key, _ in events:
                    if key.fileobj == wake_r:
                        with contextlib.suppress(OSError):
                            os.read(wake_r, 4096)
                        continue
                    chunk = sock.recv(65536)
                    if not chunk:
                        return  # the bot went away
                    buffer += chunk
                    while b"\n" in buffer:
                        raw, buffer = buffer.split(b"\n", 1)
                        self._received(json.loads(raw))
                    if len(buffer) > MAX_LINE:
                        return
        finally:
            self.connected.clear()
            self._sock = None
            self._wake_fd = None
            selector.close()
            sock.close()
            os.close(wake_r)
            os.close(wake_w)

    def _run_http(self) -> None:
        """Exchange batches with ``POST /jobs/exchange`` (``lcbot.jobremote``)."""
        if self._http is None:
            from lcbot.jobremote import HttpClient

            self._http = HttpClient(self, encode)
        self._http.run()

    def _received(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "welcome":
            self.connected.set()
        elif op == "refused":
            self.refused = str(message.get("error") or "refused")
            self._closing = True
        with contextlib.suppress(Exception):
            self.on_message(message)


def alert_text(job: str, text: str) -> str:
    """A job's alert as chat shows it: ``job: text``, unless the text names the job first
    (``train.py finished in 3h12m`` from job ``train`` stays as it is)."""
    import re

    if re.match(re.escape(job) + r"(?![\w-])", text, flags=re.IGNORECASE):
        return text
    return f"{job}: {text}"


def job_alert(job: str, host: str, message: dict[str, Any]) -> Any:
    """The alert of a job's ``alert`` message (an ``lcbot.alerts.Alert``): its key within
    the job's, its labels and ``job`` and ``host`` (which the job cannot override)."""
    from lcbot.alerts import make_alert

    key = message.get("key")
    labels = message.get("labels")
    labels = {**(labels if isinstance(labels, dict) else {}), "job": job, "host": host}
    return make_alert(
        alert_text(job, str(message["text"])),
        message.get("level", "warning"),
        None,
        f"{job}:{key}" if key else None,
        bool(message.get("resolved", False)),
        source=f"job:{job}",
        labels=labels,
    )


def _line(message: dict[str, Any]) -> bytes:
    return encode(message) + b"\n"


def encode(message: dict[str, Any]) -> bytes:
    """``message`` as JSON of less than ``MAX_LINE`` bytes: a text too long is cut, never
    the framing."""
    data = json.dumps(message, ensure_ascii=False, default=str).encode("utf-8", "replace")
    if len(data) >= MAX_LINE:
        message = {**message, "text": str(message.get("text", ""))[: MAX_LINE // 8]}
        data = json.dumps(message, ensure_ascii=False, default=str).encode("utf-8", "replace")
        if len(data) >= MAX_LINE:
            keep = {k: message[k] for k in ("op", "id") if k in message}
            data = json.dumps({**keep, "text": "(too large to send)"}).encode()
    return data
