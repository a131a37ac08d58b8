"""The console transport: stdin lines are messages from one user; outgoing messages print.

Piped input (not a terminal) is handled one line at a time, each to completion unless
it takes longer than ``PIPED_PATIENCE`` (then the next line goes on meanwhile), so scripts
see answers in order: ``printf 'status\\ninterval:30\\nstatus\\n' | lcbot run``. At the end
of input the bot stops: it waits for running commands and the drain (``[bot]
stop_timeout`` at most) and exits 0.

A file prints one line, ``[file for USER] NAME (SIZE bytes): PATH``. The outbox removes
its copy once sent, so the console first links (or copies) it to
``<data_dir>/received/`` (0600; lcbot never deletes what is there): the path printed stays.
A line ``[room:ID TOPIC] TEXT`` is ``TEXT`` sent in the group chat ``ID`` (named ``TOPIC``,
optional), as an @-mention of the bot in a WeChat group; answers go to the group
(printed ``→ room:ID: …``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import shutil
import sys
import threading
from pathlib import Path
from typing import TextIO

from lcbot.transports.base import Address, Incoming, OnMessage, Transport

log = logging.getLogger("lcbot.console")

PIPED_PATIENCE = 1.0  # seconds a piped line's command may take before the next line is read
RECEIVED = "received"  # beside the outbox's files folder: where printed files stay
ROOM_LINE = re.compile(r"\[room:([^\s\]]+)(?:\s+([^\]]*))?\]\s*(.*)", re.S)


class ConsoleTransport(Transport):
    name = "console"
    identity = "name"

    def __init__(
        self,
        user: str,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        hint: str | None = None,
        received: Path | None = None,
    ):
        super().__init__()
        self.user = user
        self.received = received  # None: <data_dir>/received, beside the outbox's files
        self.hint = hint  # logged once the console starts (why the console was chosen)
        self.stdin = stdin or sys.stdin or io.StringIO()  # fd 0 closed: no input
        from rich.console import Console

        self.console = Console(file=stdout or sys.stdout, highlight=False, soft_wrap=True)
        self._task: asyncio.Task[None] | None = None
        # the commands running, held until done: a task only the loop refers to may be
        # garbage-collected while it runs (its command closed half-way, "Task was destroyed")
        self._running: set[asyncio.Task[None]] = set()

    async def start(self, on_message: OnMessage) -> None:
        if self.hint:
            log.info("%s", self.hint)
        self.set_ready(True)
        self._task = asyncio.create_task(self._read(on_message), name="lcbot-console")

    async def _read(self, on_message: OnMessage) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def reader() -> None:  # a daemon thread: a blocked read never holds up exit
            try:
                with contextlib.suppress(AttributeError, ValueError):
                    self.stdin.reconfigure(errors="replace")  # undecodable bytes → U+FFFD
                for line in self.stdin:
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            except Exception as exc:  # a broken input ends the session like end of input
                log.error("console input failed: %s", exc)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop may be closed already
                    loop.call_soon_threadsafe(queue.put_nowait, None)

        threading.Thread(target=reader, name="lcbot-stdin", daemon=True).start()
        interactive = self.stdin.isatty()
        try:
            while (line := await queue.get()) is not None:
                incoming = self.incoming(line.rstrip("\r\n"))
                task = asyncio.create_task(on_message(incoming))
                self._running.add(task)  # held until done, after the input ended too
                task.add_done_callback(self._running.discard)
                if not interactive:  # scripts see answers in order, unless a command is slow
                    await asyncio.wait({task}, timeout=PIPED_PATIENCE)
        finally:
            self.finished.set()  # the bot stops; it waits for running commands, bounded

    def incoming(self, line: str) -> Incoming:
        """The message a line of input is: from the console's user, privately or in a
        group chat (``[room:ID TOPIC] TEXT``)."""
        room = ROOM_LINE.fullmatch(line)
        if room is None:
            return Incoming(self.user, self.user, line)
        room_id, topic, text = room.groups()
        return Incoming(
            self.user, self.user, text, room_id, f"room:{room_id}", (topic or "").strip() or None
        )

    async def send(self, address: Address, text: str) -> None:
        from rich.markup import escape

        if address.label == self.user:
            self.console.print(escape(text))
        else:
            self.console.print(f"[bold]→ {escape(address.label)}:[/] {escape(text)}")

    async def send_file(self, address: Address, path: Path, name: str) -> None:
        from rich.markup import escape

        kept = self._keep(path, name)
        size = kept.stat().st_size
        self.console.print(escape(f"[file for {address.label}] {name} ({size} bytes): {kept}"))

    def _keep(self, path: Path, name: str) -> Path:
        """A lasting copy of ``path`` in ``received``: a hard link where it can be."""
        from lcbot.db import private_dir

        folder = self.received or path.parent.parent / RECEIVED
        private_dir(folder)
        kept = folder / f"{path.name[:8]}-{name}"  # a repeated send lands on the same path
        if not kept.exists():
            try:
                os.link(path, kept)
            except OSError:  # another file system, or no hard links
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
                with path.open("rb") as src, open(os.open(kept, flags, 0o600), "wb") as out:
                    shutil.copyfileobj(src, out)
        return kept

    async def stop(self) -> None:
        await super().stop()
        if self._task is not None and not self._task.done():
            self._task.cancel()
