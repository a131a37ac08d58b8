"""The values that travel from the outbox to the drainer: ``Message`` (one outgoing message),
``Feed`` (what a commit released) and ``Writes`` (what one commit stores)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lcbot.db import outbox as sql


@dataclass(slots=True)
class Message:
    """One outgoing message. ``recipient`` is a user name or ``room:<id>`` / ``contact:<id>``.

    ``priority``: 0 replies, notices and critical alerts; 1 warnings; 2 info (lower first).
    ``parts_sent``: parts of a long message already out (kept in the database).
    ``stored``: its row is committed (False only while the database is locked).
    ``file``: a file message's key in the ``FileStore`` (``text`` is then the file's name,
    ``file_size`` its size in bytes); None for text.
    """

    id: int
    recipient: str
    text: str
    kind: str = "reply"
    attempts: int = 0
    created: float = 0.0
    priority: int = 0
    parts_sent: int = 0
    file: str | None = None
    file_size: int = 0
    stored: bool = True


class Feed:
    """Outbox → drainer: messages ready to send, and the last batch whose marks are stored.

    Written by the outbox's writer task, read by the drainer, both on the event loop.
    """

    def __init__(self) -> None:
        self.ready: deque[Message] = deque()
        self.backlog: list[str] = []  # recipients with pending rows in the database only
        self.marks_stored = 0
        self.changed = asyncio.Event()

    def push(self, messages: list[Message], marks_stored: int | None = None) -> None:
        self.ready.extend(messages)
        if marks_stored is not None:
            self.marks_stored = max(self.marks_stored, marks_stored)
        self.changed.set()

    def take(self) -> list[Message]:
        messages = list(self.ready)
        self.ready.clear()
        return messages


@dataclass
class Writes:
    """What one commit stores: new messages, the drainer's marks, other components' writes."""

    new: list[Message] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    failed: list[tuple[int, str, str, int]] = field(default_factory=list)  # attempts, state, …
    parts: list[tuple[int, int]] = field(default_factory=list)  # parts_sent, id
    ops: list[tuple[Callable[..., Any], tuple]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.new or self.sent or self.failed or self.parts or self.ops)

    def write(self, conn: sqlite3.Connection, now: float) -> None:
        if self.new:
            sql.insert(conn, self.new)
        run_ops(conn, self.ops)
        if self.parts:
            sql.mark_parts(conn, self.parts)
        # failures first: a message that failed, then was sent, ends up sent
        if self.failed:
            sql.mark_failed(conn, self.failed)
        if self.sent:
            sql.mark_sent(conn, self.sent, now)

    def pieces(self) -> list[Writes]:
        """One piece per message, one for all marks, one per other write."""
        return [
            *(Writes(new=[m]) for m in self.new),
            Writes(sent=self.sent, failed=self.failed, parts=self.parts),
            *(Writes(ops=[op]) for op in self.ops),
        ]

    @staticmethod
    def joined(pieces: list[Writes]) -> Writes:
        joined = Writes()
        for piece in pieces:
            joined.new += piece.new
            joined.sent += piece.sent
            joined.failed += piece.failed
            joined.parts += piece.parts
            joined.ops += piece.ops
        return joined


def run_ops(conn: sqlite3.Connection, ops: list[tuple[Callable[..., Any], tuple]]) -> None:
    """Run recorded writes in order; a run of the same op that offers ``op.many(conn,
    [args, …])`` (few multi-row statements: an audit row per command) goes as one call."""
    i = 0
    while i < len(ops):
        op, args = ops[i]
        many = getattr(op, "many", None)
        if many is None:
            op(conn, *args)
            i += 1
            continue
        j = i + 1
        while j < len(ops) and ops[j][0] is op:
            j += 1
        many(conn, [a for _, a in ops[i:j]])
        i = j
