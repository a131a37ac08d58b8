"""The jobs' local door: a Unix socket ``<data_dir>/jobs.sock`` (0600, in the 0700 data dir).

No token: whoever may open the file is the bot's own user. Newline-delimited JSON, at most
``MAX_LINE`` bytes a message (``lcbot.joblink``); the first message must be ``hello``
within ``HELLO_TIMEOUT``. A bad message gets an ``error`` answer and changes nothing; an
oversized one ends the connection (the SDK reconnects). Nothing listens on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lcbot.jobhub import JobHub
from lcbot.joblink import MAX_LINE, SOCKET_NAME

log = logging.getLogger("lcbot.jobs")

HELLO_TIMEOUT = 5.0
MAX_WRITE_BUFFER = 4 * 1024 * 1024  # a job that reads nothing is disconnected
MAX_CONNECTIONS = 512


class JobSocket:
    def __init__(self, hub: JobHub, data_dir: Path) -> None:
        self.hub = hub
        self.path = data_dir / SOCKET_NAME
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[JobSocket]:
        self.path.unlink(missing_ok=True)  # a crashed bot's (the data-dir lock is ours)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._connected, path=str(self.path), limit=MAX_LINE
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self.path.unlink(missing_ok=True)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            if self.connections > MAX_CONNECTIONS:
                _write(writer, {"op": "refused", "error": "too many jobs connected"})
                return
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the bot is stopping (re-raised, asyncio's stream callback logs a traceback)
        finally:
            self.connections -= 1
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(message: dict[str, Any]) -> None:
            if writer.is_closing():
                return
            if writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                writer.close()
                return
            _write(writer, message)

        try:
            hello = await asyncio.wait_for(_read(reader), HELLO_TIMEOUT)
        except (asyncio.TimeoutError, ValueError) as exc:
            send({"op": "refused", "error": f"expected a hello message: {exc or 'timeout'}"})
            return
        if not isinstance(hello, dict) or hello.get("op") != "hello":
            send({"op": "refused", "error": "the first message must be hello"})
            return
        session = self.hub.attach(hello, send)
        if isinstance(session, str):
            log.warning("job refused: %s", session)
            send({"op": "refused", "error": session})
            return
        try:
            while True:
                try:
                    message = await _read(reader)
                except ValueError as exc:
                    if "too large" in str(exc):
                        send({"op": "error", "error": str(exc)})
                        return
                    send({"op": "error", "error": f"not JSON: {exc}"})
                    continue
                if message is None:
                    return
                if isinstance(message, dict):
                    self.hub.handle(session, message)
                else:
                    send({"op": "error", "error": "a message is a JSON object"})
        finally:
            self.hub.detach(session)


async def _read(reader: asyncio.StreamReader) -> Any:
    """The next message; None at the end of the stream; ValueError for a bad one."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        line = exc.partial
    except asyncio.LimitOverrunError:
        raise ValueError(f"message too large (more than {MAX_LINE} bytes)") from None
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)[:100]) from None


def _write(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
