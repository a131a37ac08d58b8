"""The listener's connection limits (``lcbot/ingress_guard.py``) over real TCP on 127.0.0.1:
idle floods are evicted and capped, silent and slowloris connections time out, authorised
requests get through, malformed requests and accept errors are one short log line. The
descriptor-exhaustion cases run ``lcbot run`` as a process with a lowered ``ulimit -n``.

The limits are the documented ones (README, "HTTP ingress"), not read from lcbot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.engine import running_bot
from tests.procs import WAIT, make_project, spawn, wait_until
from tests.test_ingress import (
    TOKEN,
    TOKEN_ENV,
    client,
    free_port,
    ingress,
    run,
    settle,
    stored,
)

CAP = 128  # connections kept open (when the descriptor limit is at least 4 × that)
HEADER_TIMEOUT = 5.0  # seconds for a request head
DEADLINE = HEADER_TIMEOUT + 5.0  # a bounded wait for what the header timeout must do
SOFT_LIMIT = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

needs_fds = pytest.mark.skipif(
    SOFT_LIMIT != resource.RLIM_INFINITY and SOFT_LIMIT < 1024,
    reason="needs ulimit -n of 1024 or more (the test and the bot share the process)",
)


class Idle:
    """A client connection that sends nothing (or what it is told), collects what the
    server answers in ``data`` and notices when the server closes it (``closed``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.data = b""
        self.closed = asyncio.ensure_future(self._read_until_eof())

    @classmethod
    async def open(cls, port: int) -> Idle:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def _read_until_eof(self) -> bytes:
        with contextlib.suppress(ConnectionError):
            while chunk := await self.reader.read(65536):
                self.data += chunk
        return self.data

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def answer(self) -> bytes:
        """The next complete answer (head and Content-Length body) the server sent."""
        deadline = time.monotonic() + WAIT
        while True:
            head, sep, rest = self.data.partition(b"\r\n\r\n")
            if sep:
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                if len(rest) >= length:
                    self.data = rest[length:]
                    return head + sep + rest[:length]
            assert not self.closed.done(), f"closed before an answer: {self.data!r}"
            assert time.monotonic() < deadline, f"no answer within {WAIT}s"
            await asyncio.sleep(0.01)


async def until(condition, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.02)


def closed(conns: list[Idle]) -> list[int]:
    return [i for i, c in enumerate(conns) if c.closed.done()]


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def answer_on(conn: Idle, request: bytes) -> bytes:
    """Send ``request`` on a kept-alive connection; its answer."""
    conn.send(request)
    return await conn.answer()


# --- idle floods --------------------------------------------------------------------------------


@needs_fds
def test_idle_flood_is_capped_oldest_first_and_authorised_posts_get_through(tmp_path, token):
    flood = 300

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot:
            port = bot.app.ingress.port
            kept = await Idle.open(port)  # the oldest, but it made a request: kept alive
            authorised = HEALTHZ.replace(
                b"\r\n\r\n", f"\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
            )
            assert (await answer_on(kept, authorised)).startswith(b"HTTP/1.1 200")
            idle = [await Idle.open(port) for _ in range(flood)]  # oldest first
            evicted = flood - (CAP - 1)  # kept holds one place
            await until(lambda: len(closed(idle)) >= evicted, "the flood evicted to the cap")
            await asyncio.sleep(0.2)
            assert bot.app.ingress.connections == CAP
            gone = closed(idle)
            assert len(gone) == evicted and gone == list(range(evicted)), "oldest first"
            assert not kept.closed.done()

            async with client(bot, token) as http:  # at the cap: evicts one more idle one
                reply = await http.post("/alert", {"text": "through the flood"})
                assert reply.status == 202, reply.body
                assert bot.app.ingress.connections == CAP
                assert len(closed(idle)) == evicted + 1

                # the rest time out; the kept-alive clients stay
                await until(lambda: len(closed(idle)) == flood, "the idle ones timed out")
                assert (await http.get("/healthz")).status == 200
                assert (await answer_on(kept, authorised)).startswith(b"HTTP/1.1 200")
                assert bot.app.ingress.connections == 2  # kept and the aiohttp client's
                for conn in idle:
                    assert conn.closed.result() == b""  # closed without a word
            await settle(bot)
            assert bot.lines("root1") == ["INFO through the flood"]
            assert stored(bot) == 1

    run(go())


def test_silent_and_slowloris_connections_close_after_the_header_timeout(tmp_path):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot:
            port = bot.app.ingress.port
            kept = await Idle.open(port)
            assert (await answer_on(kept, HEALTHZ)).startswith(b"HTTP/1.1 200")
            silent = await Idle.open(port)
            slowloris = await Idle.open(port)
            slowloris.send(b"POST /alert HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow = await Idle.open(port)  # slow but within the timeout: answered
            body = b'{"text": "slow"}'
            request = b"POST /alert HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s"
            request %= (len(body), body)
            for i in range(0, len(request), 16):  # over 2 s
                slow.send(request[i : i + 16])
                await asyncio.sleep(0.4)
            started = time.monotonic()
            while not (silent.closed.done() and slowloris.closed.done()):
                assert time.monotonic() - started < DEADLINE, "still open after the timeout"
                slowloris.send(b"X-Drip: 1\r\n")  # a header line every 0.3 s
                await asyncio.sleep(0.3)
            assert await silent.closed == b""
            assert await slowloris.closed == b""
            assert bot.app.ingress.connections == 2  # kept and slow, both finished a request
            again = await answer_on(kept, HEALTHZ)  # idle keep-alive: not timed out
            assert again.startswith(b"HTTP/1.1 200")
            answer = await slow.answer()
            assert answer.startswith(b"HTTP/1.1 202"), answer
            assert stored(bot) == 1

    run(go())


def test_an_unauthorised_client_is_disconnected(tmp_path, token):
    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot:
            conn = await Idle.open(bot.app.ingress.port)
            conn.send(HEALTHZ)  # HTTP/1.1: keep-alive, unless the server closes
            answer = await asyncio.wait_for(conn.closed, WAIT)
            assert answer.startswith(b"HTTP/1.1 401")
            assert b"Connection: close" in answer

    run(go())


# --- malformed requests and accept errors in the log ----------------------------------------------

MALFORMED = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(300)),
    b"POST /alert HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"GET /\x01\x02 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
]


@pytest.mark.parametrize("with_token", [False, True], ids=["no token", "token"])
def test_malformed_requests_are_one_short_log_line(tmp_path, monkeypatch, caplog, with_token):
    if with_token:
        monkeypatch.setenv(TOKEN_ENV, TOKEN)

    async def go():
        async with running_bot(tmp_path, config=ingress()) as bot:
            port = bot.app.ingress.port
            with caplog.at_level(logging.INFO):
                for _ in range(3):
                    for request in MALFORMED:
                        conn = await Idle.open(port)
                        conn.send(request + b"\r\n")
                        answer = await asyncio.wait_for(conn.closed, WAIT)
                        assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(
                            b"HTTP/1.1 400"
                        ), (request[:60], answer[:100])
            assert stored(bot) == 0

    run(go())
    records = [r for r in caplog.records if "ingress listening" not in r.getMessage()]
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    assert len(records) == 1, [r.getMessage()[:200] for r in records]  # once a minute
    line = records[0].getMessage()
    assert "bad request from 127.0.0.1" in line and len(line) < 200, line
    assert records[0].levelno == logging.WARNING


def test_accept_errors_are_throttled_while_serving_and_the_handler_restored(tmp_path, caplog):
    """asyncio reports "socket.accept() out of system resource" through the loop's
    exception handler: while the ingress serves, one line a minute; everything else still
    reaches the handler the loop had, which is back once the bot stops."""
    seen: list[str] = []
    emfile = OSError(24, "Too many open files")

    async def go():
        loop = asyncio.get_running_loop()

        def mine(loop, context):
            seen.append(context["message"])

        loop.set_exception_handler(mine)
        async with running_bot(tmp_path, config=ingress()) as bot:
            assert loop.get_exception_handler() is not mine
            with caplog.at_level(logging.INFO):
                for _ in range(500):
                    loop.call_exception_handler(
                        {"message": "socket.accept() out of system resource", "exception": emfile}
                    )
                loop.call_exception_handler({"message": "something else"})
                async with client(bot) as http:
                    assert (await http.get("/healthz")).status == 200
        assert loop.get_exception_handler() is mine
        loop.call_exception_handler({"message": "after the stop"})

    run(go())
    assert seen == ["something else", "after the stop"]
    lines = [r.getMessage() for r in caplog.records if "accept" in r.getMessage()]
    assert lines == [
        "ingress cannot accept connections: Too many open files; idle connections are closed"
    ]


# --- a real process out of descriptors ----------------------------------------------------------

HOG = """
import os, resource
from lcbot import hookimpl

HELD = []

@hookimpl
def lcbot_startup(bot):
    # the rest of the bot uses up the descriptors: FREE stay for the listener
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    while soft - len(os.listdir("/proc/self/fd")) > int(os.environ["HOG_FREE"]):
        HELD.append(os.open(os.devnull, os.O_RDONLY))
"""


def post(port: int, text: str, timeout: float = WAIT) -> int | str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/alert",
        data=json.dumps({"text": text}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError) as exc:
        return repr(exc)


@contextlib.contextmanager
def limited_bot(tmp_path: Path, nofile: int, free: int | None = None):
    """``lcbot run`` with ``ulimit -n nofile`` (and, with ``free``, a plugin holding all
    descriptors but ``free``); yields (process, port, stderr file)."""
    port = free_port()
    extra = f'[ingress]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
    plugins = {"hog": HOG} if free is not None else None
    project = make_project(tmp_path / "bot", extra=extra, plugins=plugins)
    env = {TOKEN_ENV: TOKEN, "HOG_FREE": str(free or 0)}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with (tmp_path / "stderr.log").open("w+") as stderr:
        proc = spawn(
            project,
            "run",
            "--transport",
            "console",
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=limit,
        )
        try:
            wait_until(lambda: post(port, "up", timeout=2) == 202, "the bot answers")
            yield proc, port, stderr
        finally:
            proc.kill()
            proc.wait(WAIT)


def flood(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send nothing (connecting does not wait for accept)."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        socks.append(sock)
    return socks


def stderr_text(stderr) -> str:
    stderr.flush()
    stderr.seek(0)
    return stderr.read()


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts descriptors in /proc"
)


@linux_only
def test_idle_flood_cannot_exhaust_a_process_descriptors(tmp_path):
    """The issue's case scaled down: ulimit -n 256 and 400 idle connections. The listener
    keeps a quarter of the limit open, so accept never fails, and posts get through."""
    with limited_bot(tmp_path, nofile=256) as (proc, port, stderr):
        socks = flood(port, 400)
        try:
            for i in range(3):
                assert post(port, f"during the flood {i}") == 202
                time.sleep(0.5)
            fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            assert fds < 256 // 4 + 40, fds
        finally:
            for sock in socks:
                sock.close()
        text = stderr_text(stderr)
    assert "out of system resource" not in text and "cannot accept" not in text, text[-2000:]
    assert "Traceback" not in text
    assert len(text) < 2000, text[-2000:]


@linux_only
def test_out_of_descriptors_is_logged_once_and_posts_still_get_through(tmp_path):
    """Something else in the bot holds all descriptors but 10: accept() fails. That is one
    log line (not thousands a second), idle connections are shed, posts get through."""
    with limited_bot(tmp_path, nofile=256, free=10) as (_, port, stderr):
        socks = flood(port, 300)
        try:
            time.sleep(0.5)
            for i in range(3):
                assert post(port, f"short of descriptors {i}") == 202
            time.sleep(2.0)  # asyncio retries accept every second
            text = stderr_text(stderr)
        finally:
            for sock in socks:
                sock.close()
    lines = [line for line in text.splitlines() if "accept" in line]
    assert len(lines) == 1, text[-3000:]
    assert "ingress cannot accept connections: Too many open files" in lines[0]
    assert "Traceback" not in text
    assert len(text) < 2000, text[-2000:]
