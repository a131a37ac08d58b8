"""An in-memory transport: messages are injected by code and sent ones are recorded.

Used by tests, benchmarks and ``lcbot.testing``. ``fail_next`` makes sends (of texts and
files) raise, to exercise retries.
"""

from __future__ import annotations

from pathlib import Path

from lcbot.transports.base import Address, Incoming, OnMessage, Transport


class MemoryTransport(Transport):
    """``sent`` holds ``(address.label, text)``: the user name, or ``room:<id>`` /
    ``contact:<id>``; ``files`` holds ``(address.label, name, content)`` of each file
    (read when it is sent). ``identity`` is ``"name"`` unless given."""

    name = "memory"

    def __init__(self, record: bool = True, identity: str = "name") -> None:
        super().__init__()
        self.identity = identity
        self.record = record
        self.sent: list[tuple[str, str]] = []
        self.files: list[tuple[str, str, bytes]] = []
        self.sent_count = 0
        self.fail_next = 0
        self.on_message: OnMessage | None = None

    async def start(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.set_ready(True)

    async def send(self, address: Address, text: str) -> None:
        self._sending()
        if self.record:
            self.sent.append((address.label, text))

    async def send_file(self, address: Address, path: Path, name: str) -> None:
        self._sending()
        if self.record:
            self.files.append((address.label, name, path.read_bytes()))

    def _sending(self) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("memory transport: simulated failure")
        self.sent_count += 1

    async def inject(
        self,
        sender: str,
        text: str,
        room_id: str | None = None,
        name: str | None = None,
        topic: str | None = None,
    ) -> None:
        """Deliver a message from ``sender`` (a user name or contact id; display name
        ``name``, default ``sender``) and wait until it is handled. With ``room_id`` it
        was sent in that group chat (topic ``topic``), and answers go there, as on WeChat."""
        assert self.on_message is not None, "transport not started"
        reply_to = None if room_id is None else f"room:{room_id}"
        await self.on_message(Incoming(sender, name or sender, text, room_id, reply_to, topic))
