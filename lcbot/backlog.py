"""The drainer's backlog: per recipient, a bounded window of pending messages in memory; the
rest waits in the database and is loaded as the window empties.

Each recipient's window is sorted by (priority, id) and holds at most ``window`` stored
messages (messages not stored yet — replies sent while the database is locked — always
get in: they exist nowhere else). When a window overflows, its least urgent stored message
goes back to the database, and the recipient's *edge* — the key of the last stored message
still in memory — marks where the database takes over: every pending row of that
recipient with a key above the edge is in the database only, every one below it is in
memory (or already sent). So a backlog of 100,000 rows to one person costs a window of
memory, and sending from it is linear.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from lcbot.message import Message

WINDOW = 200  # stored messages per recipient in memory

Key = tuple[int, int]  # (priority, id)
Loader = Callable[[str, "Key | None", int], list[Message]]  # recipient, after, limit


class Backlog:
    def __init__(self, load: Loader, window: int = WINDOW) -> None:
        self.load = load
        self.window = window
        self.queues: dict[str, list[tuple[int, int, Message]]] = {}
        self.edges: dict[str, Key | None] = {}  # recipients with more in the database
        self._stored: dict[str, int] = {}  # stored messages in each window
        self._counted: set[int] = set()  # ids counted there (stored when they came in)

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues.values())

    @property
    def in_database(self) -> bool:
        """Whether some recipient has pending messages in the database only."""
        return bool(self.edges)

    def recipients(self) -> Iterator[str]:
        return iter(self.queues)

    def queue(self, recipient: str) -> list[tuple[int, int, Message]]:
        return self.queues[recipient]

    def mark_backlog(self, recipients: list[str]) -> None:
        """At start: these recipients have pending rows in the database (none in memory)."""
        for recipient in recipients:
            self.edges.setdefault(recipient, None)

    def add(self, message: Message) -> None:
        """Take a message to send (from the feed or the database)."""
        recipient = message.recipient
        key = (message.priority, message.id)
        if message.stored and recipient in self.edges:
            edge = self.edges[recipient]
            if edge is None or key > edge:
                return  # it waits in the database; loaded in its turn
        queue = self.queues.setdefault(recipient, [])
        entry = (message.priority, message.id, message)
        if not queue or queue[-1] < entry:
            queue.append(entry)  # the usual case: the newest of its priority
        else:
            bisect.insort(queue, entry)
        if message.stored:
            self._counted.add(message.id)
            self._stored[recipient] = self._stored.get(recipient, 0) + 1
            if self._stored[recipient] > self.window:
                self._evict(recipient, queue)

    def _evict(self, recipient: str, queue: list) -> None:
        """Send the least urgent stored message back to the database."""
        for i in range(len(queue) - 1, -1, -1):
            if queue[i][1] in self._counted:
                self._counted.discard(queue[i][1])
                del queue[i]
                self._stored[recipient] -= 1
                break
        last = next((e for e in reversed(queue) if e[1] in self._counted), None)
        self.edges[recipient] = (last[0], last[1]) if last else None

    def refill(self, recipient: str) -> None:
        """Load the next rows of ``recipient`` from the database when the window runs low."""
        if recipient not in self.edges or self._stored.get(recipient, 0) > self.window // 2:
            return
        want = self.window - self._stored.get(recipient, 0)
        rows = self.load(recipient, self.edges[recipient], want)
        if len(rows) < want:
            del self.edges[recipient]  # all of it is in memory now
        queue = self.queues.setdefault(recipient, [])
        entries = [(m.priority, m.id, m) for m in rows]
        if queue:  # skip the rows of replies sent unstored and stored since (held here)
            held = {entry[1] for entry in queue}
            entries = [entry for entry in entries if entry[1] not in held]
        self._counted.update(entry[1] for entry in entries)
        self._stored[recipient] = self._stored.get(recipient, 0) + len(entries)
        if queue and entries and entries[0] < queue[-1]:  # unstored ones sort after: merge
            queue += entries
            queue.sort()  # two sorted runs: linear
        else:
            queue += entries
        if not queue:
            del self.queues[recipient]
        if rows and recipient in self.edges:
            self.edges[recipient] = (rows[-1].priority, rows[-1].id)

    def drop(self, recipient: str, messages: list[Message]) -> None:
        """Forget sent (or dead) messages."""
        if not messages:
            return
        queue = self.queues[recipient]
        count = len(messages)
        front = queue[:count]
        if len(front) == count and all(e[2] is m for e, m in zip(front, messages, strict=True)):
            del queue[:count]  # the usual case: the front of the queue went
        else:
            gone = {m.id for m in messages}
            queue[:] = [entry for entry in queue if entry[1] not in gone]
        counted, stored = self._counted, 0
        for m in messages:
            if m.id in counted:
                counted.discard(m.id)
                stored += 1
        if not queue:
            del self.queues[recipient]
            self._stored.pop(recipient, None)
        elif stored:
            self._stored[recipient] -= stored
