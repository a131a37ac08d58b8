"""Group commit of the HTTP listener's alerts, on the event loop (no worker thread).

Each request's alerts are stored in state ``new`` in one ``SAVEPOINT`` of a transaction
shared with the other requests of the same loop turn: a request whose rows the database
refuses rolls back alone (its caller gets the exception: a 500), the others commit. Ids
are answered once the commit is done; then the alerts go to the router in memory
(``taken``), which routes them like its own (their outcome replaces state ``new``; a crash
before that leaves them ``new``, routed at the next start). While another process holds
the write lock the commit is tried again with backoff, and a request still not stored
after ``BUSY_TIMEOUT`` gets None (a 503): nothing of it is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lcbot.alerts import Alert
from lcbot.db import BUSY_TIMEOUT, Busy, Database, is_busy, transaction
from lcbot.db import alerts as sql

RETRY = 0.03  # seconds between commit attempts while the database is locked (doubling)
MAX_RETRY = 0.5


class AlertStore:
    """``await store(alerts)``: their ids once committed (None: the database stayed locked)."""

    def __init__(self, db: Database, taken: Callable[[list[Alert]], None]) -> None:
        self.db = db
        self.taken = taken  # the router's in-memory path (``AlertRouter.submit_stored``)
        self.longest = 0.0  # seconds: the longest commit on the loop (benchmarks)
        self._pending: list[tuple[list[Alert], asyncio.Future[list[int] | None], float]] = []
        self._scheduled = False
        self._backoff = 0.0

    async def store(self, alerts: list[Alert]) -> list[int] | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int] | None] = loop.create_future()
        self._pending.append((alerts, future, loop.time() + BUSY_TIMEOUT))
        if not self._scheduled:  # the requests of this loop turn join the commit
            self._scheduled = True
            loop.call_soon(self._commit)
        return await future

    def _commit(self) -> None:
        loop = asyncio.get_running_loop()
        self._scheduled = False
        pending = [p for p in self._pending if not p[1].done()]  # a cancelled request: gone
        self._pending = []
        conn = self.db.conn
        assert conn is not None, "the database is not open"
        started = loop.time()
        stored = []
        try:
            with transaction(conn):
                for alerts, future, _ in pending:
                    try:
                        ids = sql.insert_new_alone(conn, alerts)
                    except Exception as exc:  # this request's rows: not the others'
                        if is_busy(exc):
                            raise
                        future.set_exception(exc)
                        continue
                    stored.append((alerts, future, ids))
        except Busy:
            self._retry(loop, [p for p in pending if not p[1].done()])
            return
        except Exception as exc:  # the commit itself failed: nothing is stored
            for _, future, _ in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self.longest = max(self.longest, loop.time() - started)
        self._backoff = 0.0
        for alerts, future, ids in stored:
            for alert, id_ in zip(alerts, ids, strict=True):
                alert.id = id_
            self.taken(alerts)
            if not future.done():
                future.set_result(ids)

    def _retry(self, loop: asyncio.AbstractEventLoop, pending: list) -> None:
        now = loop.time()
        for alerts, future, deadline in pending:
            if deadline <= now:
                future.set_result(None)
            else:
                self._pending.append((alerts, future, deadline))
        if self._pending and not self._scheduled:
            self._backoff = min(max(self._backoff * 2, RETRY), MAX_RETRY)
            self._scheduled = True
            loop.call_later(self._backoff, self._commit)
