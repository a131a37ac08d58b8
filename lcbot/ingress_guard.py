"""The ingress's connection guard: idle, half-sent and malformed connections cannot wear
the HTTP listener (``lcbot.ingress``) down.

* At most ``cap`` connections are open: 128, or a quarter of the process's descriptor
  limit when that is lower. A new connection at the cap closes the oldest one that has
  not sent a request (and has nothing waiting to be read), else the oldest idle
  keep-alive one; only when every open connection is busy is the newcomer closed itself.
  A real client therefore always gets in while a flood of idle sockets is evicted.
* A connection that sends no complete request head within ``HEADER_TIMEOUT`` seconds is
  closed (idle sockets, slowloris). Idle keep-alive connections close after aiohttp's
  keepalive timeout.
* When ``accept()`` runs out of descriptors the idle connections are closed and, for a
  minute, fewer are kept; the error is logged at most once a minute with a count:
  asyncio's accept loop would report it (with a traceback) hundreds of times a second.
* A request aiohttp refuses as malformed (a 20 KB header, too many headers, bad
  chunking or encoding) is logged as one short line, at most once a minute with a count,
  instead of a traceback each.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from lcbot.errors import LcbotError

try:
    import fcntl
    import resource
    import termios
except ImportError:  # pragma: no cover - not on Windows
    fcntl = resource = termios = None  # type: ignore[assignment]

log = logging.getLogger("lcbot.ingress")

MAX_CONNECTIONS = 128
HEADER_TIMEOUT = 5.0  # seconds for a new connection to send a complete request head
REPORT_EVERY = 60.0  # seconds between two log lines about the same kind of trouble
OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
ACCEPT_ERROR = "socket.accept() out of system resource"  # asyncio's message


def default_cap() -> int:
    """``MAX_CONNECTIONS``, or a quarter of the descriptor limit when that is lower."""
    if resource is None:  # pragma: no cover
        return MAX_CONNECTIONS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(8, min(MAX_CONNECTIONS, soft // 4))


class Throttled:
    """Log through ``logger`` at most once per ``every`` seconds, counting the rest."""

    def __init__(self, logger: logging.Logger, every: float = REPORT_EVERY) -> None:
        self.logger = logger
        self.every = every
        self.held = 0
        self._next = 0.0

    def __call__(self, level: int, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self.held += 1
            return
        if self.held:
            msg += f" ({self.held} more since the last report)"
        self.held, self._next = 0, now + self.every
        self.logger.log(level, msg, *args)


class Listener(socket.socket):
    """The listening socket. ``accept()`` takes at most ``guard.batch`` connections a loop
    turn (a burst must not open many descriptors before the guard has evicted any), and
    when out of descriptors it fails once a turn, not once per queued connection (asyncio's
    accept loop carries on after that error and schedules one retry per failure: a storm),
    and tells the guard."""

    guard: ConnectionGuard | None = None
    _refusing = False
    _taken = 0  # connections accepted this loop turn

    def accept(self) -> tuple[socket.socket, Any]:
        guard = self.guard
        if self._refusing or (guard is not None and self._taken >= guard.batch):
            raise BlockingIOError(errno.EAGAIN, "enough for this loop turn")
        try:
            accepted = super().accept()
        except OSError as exc:
            if exc.errno not in OUT_OF_RESOURCES:
                raise
            self._refusing = True
            asyncio.get_running_loop().call_soon(self._next_turn)
            if guard is not None:
                guard.exhausted()
            raise
        if not self._taken:
            asyncio.get_running_loop().call_soon(self._next_turn)
        self._taken += 1
        if guard is not None:
            guard.sockets += 1
        return accepted

    def _next_turn(self) -> None:
        self._refusing, self._taken = False, 0


def listen(host: str, port: int, backlog: int) -> Listener:
    """A non-blocking ``Listener`` bound to ``host:port`` (``LcbotError`` when it cannot)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = Listener(family, kind, proto)
    except OSError as exc:
        raise LcbotError(f"ingress cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise LcbotError(f"ingress cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _pending(fd: int) -> int:
    """Bytes waiting to be read on socket ``fd`` (0 when that cannot be told)."""
    if fcntl is None or fd < 0:
        return 0
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


def _peer_closed(fd: int) -> bool:
    """Whether the peer of socket ``fd`` closed it (end of stream, or reset)."""
    if fd < 0:
        return False
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # open, nothing to read
    except OSError:
        return True


class Connection(asyncio.Protocol):
    """One client connection: aiohttp's protocol (``inner``) wrapped so the guard sees it
    open, receive its first request head and close; ``requests`` (those that reached the
    application) and ``busy`` (of them, still being answered) are counted by the guard's
    middleware."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner: Any = inner
        self.fd = -1
        self.head = False  # a complete request head has arrived
        self._tail = b""  # the last bytes received while waiting for it
        self.requests = 0
        self.busy = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1
        self.inner.connection_made(transport)
        self.guard.opened(self)

    def data_received(self, data: bytes) -> None:
        if not self.head:
            seen = self._tail + data
            self.head = b"\r\n\r\n" in seen or b"\n\n" in seen
            self._tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.closed(self)
        self.guard.sockets -= 1
        self.inner.connection_lost(exc)

    @property
    def idle(self) -> bool:
        """Not answering a request, and nothing waiting to be read."""
        return not self.busy and not _pending(self.fd)

    @property
    def silent(self) -> bool:
        """Idle, and it never sent a complete request."""
        return not self.head and not self.requests and self.idle

    def close(self) -> None:
        self.guard.closed(self)
        self.inner.force_close()


class ConnectionGuard:
    """The open connections of one listener (oldest first), their limits and counts."""

    def __init__(self, cap: int | None = None, header_timeout: float = HEADER_TIMEOUT) -> None:
        self.cap = cap or default_cap()
        self.header_timeout = header_timeout
        self.open: dict[Any, Connection] = {}  # aiohttp protocol → its Connection
        self.sockets = 0  # accepted and not yet closed (open, or on their way to ``open``)
        self.counts = {"evicted": 0, "refused": 0, "timed_out": 0, "shed": 0}
        self.report = Throttled(log)
        self._squeeze = (0, 0.0)  # (limit, until) after running out of descriptors

    @property
    def limit(self) -> int:
        """The most connections kept open now: ``cap``, or less for a while after the
        process ran out of descriptors."""
        limit, until = self._squeeze
        return limit if time.monotonic() < until else self.cap

    @property
    def batch(self) -> int:
        """Connections accepted per loop turn: one takes 3 turns to reach ``opened``."""
        return max(1, self.limit // 4)

    def factory(self, make: Callable[[], Any]) -> Callable[[], Connection]:
        """The protocol factory for ``loop.create_server``; ``make``: aiohttp's server."""
        return lambda: Connection(self, make())

    def opened(self, conn: Connection) -> None:
        self.open[conn.inner] = conn
        loop = asyncio.get_running_loop()
        conn.timer = loop.call_later(self.header_timeout, self._head_due, conn)
        if len(self.open) > self.limit:
            victim = self._victim(conn)
            self.counts["evicted" if victim else "refused"] += 1
            (victim or conn).close()

    def gone(self, protocol: Any) -> bool:
        """Whether the client of ``protocol`` (``request.protocol``) closed its connection
        (a long poll stops waiting for it; aiohttp may not be reading while it waits)."""
        conn = self.open.get(protocol)
        return conn is None or _peer_closed(conn.fd)

    def closed(self, conn: Connection) -> None:
        if self.open.pop(conn.inner, None) is not None and conn.timer is not None:
            conn.timer.cancel()

    def _victim(self, newcomer: Connection) -> Connection | None:
        """The oldest idle connection that sent no request, else the oldest idle one."""
        kept_alive = None
        for conn in self.open.values():
            if conn is newcomer or conn.busy:
                continue
            if conn.silent:
                return conn
            if kept_alive is None and conn.requests and conn.idle:
                kept_alive = conn
        return kept_alive

    def _head_due(self, conn: Connection) -> None:
        if not (conn.head or conn.requests or conn.busy) and conn.inner in self.open:
            self.counts["timed_out"] += 1
            conn.close()

    def exhausted(self) -> None:
        """Out of descriptors: close every idle connection that has sent no request, and
        for a while keep at most half as many as there were sockets (so that accepting
        goes on without running out again)."""
        self._squeeze = (max(1, self.sockets // 2), time.monotonic() + REPORT_EVERY)
        for conn in [c for c in self.open.values() if c.silent]:
            self.counts["shed"] += 1
            conn.close()

    @property
    def middleware(self) -> Any:
        """Counts a connection's requests (the outermost middleware)."""
        from aiohttp import web

        @web.middleware
        async def count(request, handler):
            conn = self.open.get(request.protocol)
            if conn is None:
                return await handler(request)
            conn.requests += 1
            conn.busy += 1
            try:
                return await handler(request)
            finally:
                conn.busy -= 1

        return count

    @contextlib.contextmanager
    def watching(self, loop: asyncio.AbstractEventLoop, listener: socket.socket) -> Iterator[None]:
        """While serving: accept errors throttled, idle connections shed when out of
        descriptors; the loop's previous exception handler serves everything else."""
        previous = loop.get_exception_handler()

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if context.get("message") == ACCEPT_ERROR:
                exc = context.get("exception")
                self.report(
                    logging.ERROR,
                    "ingress cannot accept connections: %s; idle connections are closed",
                    getattr(exc, "strerror", None) or exc,
                )
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)
        if isinstance(listener, Listener):
            listener.guard = self
        try:
            yield
        finally:
            if isinstance(listener, Listener):
                listener.guard = None
            if loop.get_exception_handler() is handler:
                loop.set_exception_handler(previous)


def _bad_request(exc_info: Any) -> str | None:
    """The short reason when ``exc_info`` is a malformed request aiohttp refused."""
    from aiohttp.http_exceptions import HttpProcessingError

    exc = sys.exc_info()[1] if exc_info is True else exc_info
    if isinstance(exc, tuple):
        exc = exc[1]
    seen = 0
    while isinstance(exc, BaseException) and seen < 5:
        if isinstance(exc, HttpProcessingError):
            lines = str(exc.message or type(exc).__name__).strip().splitlines() or ["?"]
            reason = lines[0].rstrip(":").encode("ascii", "backslashreplace").decode()
            return reason[:120]
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


class ServerLog(logging.LoggerAdapter):
    """aiohttp's server logger for the ingress: a malformed request is one short line,
    throttled; anything else (a real internal error) goes on to ``aiohttp.server``."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self.report = Throttled(log)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        reason = _bad_request(kwargs.get("exc_info"))
        if reason is None:
            super().log(level, msg, *args, **kwargs)
            return
        peer = args[0] if args and "request from" in str(msg) else "a client"
        if level <= logging.DEBUG:
            log.debug("bad request from %s: %s", peer, reason)
        else:
            self.report(logging.WARNING, "ingress: bad request from %s: %s", peer, reason)
