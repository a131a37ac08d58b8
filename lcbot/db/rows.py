"""Many rows in few statements: ``INSERT … VALUES (…), (…), …`` of up to ``CHUNK`` rows.

``executemany`` runs one SQLite step per row, and Python's sqlite3 releases the GIL around
each step: with busy threads in the process, every release can cost the event loop a wait
of a whole switch interval (5 ms). A multi-row statement is one step for ``CHUNK`` rows and
less CPU per row. Statements come in power-of-two sizes, so a handful are prepared (and
cached by sqlite3) whatever the batch size.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain

CHUNK = 64  # rows per statement at most (× columns stays under SQLite's 999 variables)


@lru_cache(maxsize=64)
def _statement(head: str, width: int, size: int) -> str:
    return f"{head} VALUES {values(width, size)}"


def values(width: int, size: int) -> str:
    """``(?, ?), (?, ?), …``: ``size`` rows of ``width`` placeholders."""
    return ", ".join(["(" + ", ".join("?" * width) + ")"] * size)


def insert_rows(db: sqlite3.Connection, head: str, rows: Sequence[tuple]) -> None:
    """Run ``head`` (``INSERT INTO t (a, b)`` or ``INSERT OR REPLACE INTO t``) for ``rows``
    (tuples of one width), in order."""
    in_chunks(db, lambda width, size: _statement(head, width, size), rows)


def in_chunks(
    db: sqlite3.Connection, statement: Callable[[int, int], str], rows: Sequence[tuple]
) -> None:
    """Run ``statement(width, size)`` (SQL taking ``size`` rows of ``width`` values, e.g.
    through ``values``; cache it) for ``rows``, ``CHUNK`` rows at a time at most."""
    done, total = 0, len(rows)
    while done < total:
        size = min(CHUNK, 1 << ((total - done).bit_length() - 1))  # a power of two that fits
        chunk = rows[done : done + size]
        db.execute(statement(len(chunk[0]), size), list(chain.from_iterable(chunk)))
        done += size
