"""SQL for ``metric_series`` and ``metric_points``: job and host metrics (``lcbot.metrics``)."""

from __future__ import annotations

import sqlite3

from lcbot.db.batches import delete_before

Point = tuple[float, int | None, float]  # at (epoch), step, value


def insert(
    db: sqlite3.Connection, source: str, name: str, at: float, step: int | None, value: float
) -> None:
    """Store one point (its series is created on first use)."""
    db.execute("INSERT OR IGNORE INTO metric_series (source, name) VALUES (?, ?)", (source, name))
    db.execute(
        "INSERT INTO metric_points (series, at, step, value)"
        " SELECT id, ?, ?, ? FROM metric_series WHERE source = ? AND name = ?",
        (at, step, value, source, name),
    )


def series(db: sqlite3.Connection, source: str, name: str, since: float) -> list[Point]:
    """The points of one series from ``since`` on, oldest first."""
    return db.execute(
        "SELECT at, step, value FROM metric_points WHERE series ="
        " (SELECT id FROM metric_series WHERE source = ? AND name = ?) AND at >= ? ORDER BY at",
        (source, name, since),
    ).fetchall()


def names(db: sqlite3.Connection, source: str) -> list[str]:
    """The metric names stored for ``source``."""
    rows = db.execute(
        "SELECT name FROM metric_series WHERE source = ? ORDER BY name", (source,)
    ).fetchall()
    return [name for (name,) in rows]


def sources(db: sqlite3.Connection) -> list[str]:
    """Every source with a stored series."""
    rows = db.execute("SELECT DISTINCT source FROM metric_series ORDER BY source").fetchall()
    return [source for (source,) in rows]


def delete_old(
    db: sqlite3.Connection, before: float, limit: int, after: int = 0
) -> tuple[int, int | None]:
    """Walk up to ``limit`` points by id from ``after`` (ids grow with time) and delete
    those taken before ``before``. Returns how many went and the id to go on after — None
    once a newer point (or the end) was reached; then series left without points go too."""
    doomed, go_on = delete_before(db, "metric_points", before, limit, after)
    more = go_on is not None
    if not more and (doomed or after):  # the end of a walk that deleted points
        db.execute(
            "DELETE FROM metric_series WHERE NOT EXISTS"
            " (SELECT 1 FROM metric_points WHERE series = metric_series.id)"
        )
    return doomed, go_on
