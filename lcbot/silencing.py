"""Silences by label matchers, as in Alertmanager: matchers, an author, a comment and an
expiry; an alert whose labels match every matcher of a silence in force is not sent
(recorded ``silenced`` with the silence's id).

The ``label_silences`` table holds them. Chat commands change them through the bot's
writer (the outbox); the CLI (``lcbot silence add|expire``) writes the table directly and
the running bot reads it again every ``RELOAD`` seconds, keeping its own changes that are
not committed yet. Expiring a silence sets its end to now (Alertmanager keeps expired
silences too); retention deletes those ended ``KEEP_ENDED`` ago.
"""

from __future__ import annotations

import dataclasses
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lcbot.db import labels as sql
from lcbot.matchers import Matcher, matches_all, parse_matchers

RELOAD = 1.0  # seconds between reads of the table by the running bot
KEEP_ENDED = 7 * 86400.0  # ended silences kept this long (they are listed as expired)
ID_BYTES = 3  # a silence id: 6 hex digits
MAX_COMMENT = 500  # characters of a silence's comment
MAX_MATCHERS = 20  # matchers of one silence


@dataclass(frozen=True)
class Silence:
    """A silence by matchers; ``id`` is short hex."""

    id: str
    matchers: tuple[Matcher, ...]
    starts: float
    until: float
    author: str | None = None
    comment: str | None = None

    def active(self, now: float) -> bool:
        return self.starts <= now < self.until

    def matches(self, labels: Mapping[str, str]) -> bool:
        return bool(self.matchers) and matches_all(self.matchers, labels)

    def describe(self) -> str:
        """The matchers as text: ``host="db1" alertname=~"Disk.*"``."""
        return " ".join(map(str, self.matchers))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts": self.starts,
            "until": self.until,
            "author": self.author,
            "comment": self.comment,
        }


# --- stored ---------------------------------------------------------------------------------


def load(db: sqlite3.Connection, now: float, ended_since: float | None = None) -> list[Silence]:
    """Silences in force at ``now`` (and those ended after ``ended_since``), newest first."""
    rows = sql.load_silences(db, now if ended_since is None else min(now, ended_since))
    return [
        Silence(id_, parse_matchers(matchers), starts, until, author, comment)
        for id_, matchers, starts, until, author, comment in rows
    ]


def save(db: sqlite3.Connection, silence: Silence) -> None:
    sql.save_silence(
        db,
        silence.id,
        [str(m) for m in silence.matchers],
        silence.starts,
        silence.until,
        silence.author,
        silence.comment,
    )


end = sql.end_silence
delete_ended = sql.delete_ended_silences


def new_id(taken: Callable[[str], bool]) -> str:
    """A short random id that ``taken`` does not know."""
    while True:
        candidate = secrets.token_hex(ID_BYTES)
        if not taken(candidate):
            return candidate


def make_silence(
    matchers: Sequence[Matcher],
    seconds: float,
    author: str | None,
    comment: str | None,
    now: float,
    taken: Callable[[str], bool],
) -> Silence:
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    if all(m.matches_empty() for m in matchers):  # Alertmanager refuses these too
        raise ValueError("at least one matcher must not match the empty string")
    if len(matchers) > MAX_MATCHERS:
        raise ValueError(f"a silence has at most {MAX_MATCHERS} matchers")
    if seconds <= 0:
        raise ValueError("a silence needs a positive duration")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise ValueError(f"a silence's comment is at most {MAX_COMMENT} characters")
    return Silence(new_id(taken), tuple(matchers), now, now + seconds, author, comment)


# --- the running bot ------------------------------------------------------------------------


class Recorder(Protocol):
    """The writer the running bot's changes go through (the outbox)."""

    def record(self, op: Callable[..., Any], *args: Any) -> None: ...


class LabelSilences:
    """The running bot's silences by matchers: ``silencing`` on the event loop, the chat
    controls from any thread, ``refresh`` (event loop) reads CLI changes."""

    def __init__(self, writer: Recorder, clock: Callable[[], float] = time.time) -> None:
        self.writer = writer
        self.clock = clock
        self._silences: dict[str, Silence] = {}
        # own changes the table may not show yet: (the rows it may still show, the change)
        self._local: dict[str, tuple[tuple[Silence | None, ...], Silence]] = {}
        self._loaded_at = float("-inf")  # monotonic
        self._lock = threading.Lock()

    def refresh(self, db: sqlite3.Connection, force: bool = False) -> None:
        """Read the table again if ``RELOAD`` seconds passed (or ``force``). An own change
        the table does not show yet is kept; once it is committed, the table wins (so a
        CLI ``expire`` right after a chat ``silence`` counts)."""
        if not force and time.monotonic() - self._loaded_at < RELOAD:
            return
        now = self.clock()
        rows = {s.id: s for s in load(db, now, ended_since=now - KEEP_ENDED)}
        self._loaded_at = time.monotonic()
        with self._lock:
            for id_, (before, mine) in list(self._local.items()):
                if rows.get(id_) in before:
                    rows[id_] = mine  # not committed yet
                else:
                    del self._local[id_]  # committed (and maybe changed since)
            self._silences = {k: s for k, s in rows.items() if s.active(now)}

    def silencing(self, labels: Mapping[str, str], now: float) -> Silence | None:
        """The silence in force that matches ``labels`` (the oldest), or None."""
        if not self._silences:  # the usual case: no lock, no list
            return None
        with self._lock:
            found = [s for s in self._silences.values() if s.active(now) and s.matches(labels)]
        return min(found, key=lambda s: (s.starts, s.id)) if found else None

    def add(
        self, matchers: Sequence[Matcher], seconds: float, author: str, comment: str | None
    ) -> Silence:
        with self._lock:
            silence = make_silence(
                matchers, seconds, author, comment, self.clock(), self._silences.__contains__
            )
            self._silences[silence.id] = silence
            self._local[silence.id] = ((None,), silence)
        self.writer.record(save, silence)
        return silence

    def expire(self, silence_id: str) -> Silence | None:
        """End a silence in force; the silence, or None if there was none with that id."""
        now = self.clock()
        with self._lock:
            silence = self._silences.get(silence_id)
            if silence is None or not silence.active(now):
                return None
            del self._silences[silence_id]
            ended = dataclasses.replace(silence, until=now)
            before = self._local.get(silence_id, ((), silence))[0]
            self._local[silence.id] = ((*before, silence), ended)
        self.writer.record(end, silence_id, now)
        return silence

    def active(self) -> list[Silence]:
        """The silences in force, oldest first."""
        now = self.clock()
        with self._lock:
            return sorted(
                (s for s in self._silences.values() if s.active(now)), key=lambda s: s.starts
            )
