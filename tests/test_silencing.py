"""``lcbot.silencing.LabelSilences`` on a real SQLite database: add, matching, expiry, ids,
reloads of the table (what the CLI writes) and own changes that are not committed yet."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from lcbot.db import connect, transaction
from lcbot.matchers import parse_matchers
from lcbot.silencing import LabelSilences, end, load, make_silence, save


class Writer:
    """The outbox's part: ops are queued, and applied to the database by ``commit``."""

    def __init__(self) -> None:
        self.ops: list[tuple[Callable[..., Any], tuple]] = []

    def record(self, op: Callable[..., Any], *args: Any) -> None:
        self.ops.append((op, args))

    def commit(self, db) -> None:
        with transaction(db):
            for op, args in self.ops:
                op(db, *args)
        self.ops.clear()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tmp_path):
    db = connect(tmp_path / "lcbot.db")
    writer, clock = Writer(), Clock()
    yield db, writer, clock, LabelSilences(writer, clock)
    db.close()


DB1_DISK = {"host": "db1", "alertname": "DiskFull", "mount": "/var"}


def test_add_matches_every_matcher_and_is_committed_through_the_writer(parts):
    db, writer, clock, silences = parts
    made = silences.add(
        parse_matchers(['host="db1"', 'alertname=~"Disk.*"']), 7200, "admin1", "maintenance"
    )
    assert re.fullmatch(r"[0-9a-f]{6}", made.id)
    assert (made.starts, made.until, made.author, made.comment) == (
        clock.now,
        clock.now + 7200,
        "admin1",
        "maintenance",
    )
    assert silences.silencing(DB1_DISK, clock.now) == made
    assert silences.silencing({**DB1_DISK, "host": "db2"}, clock.now) is None
    assert silences.silencing({"host": "db1", "alertname": "LoadHigh"}, clock.now) is None
    assert silences.silencing({}, clock.now) is None
    assert load(db, clock.now) == []  # not committed yet
    writer.commit(db)
    assert load(db, clock.now) == [made]
    assert made.describe() == 'host="db1" alertname=~"Disk.*"'


def test_negative_matchers_and_missing_labels(parts):
    _, _, clock, silences = parts
    silences.add(parse_matchers(["team!=web", 'host!~"db.*"']), 60, "a", None)
    assert silences.silencing({"team": "ops", "host": "app1"}, clock.now)
    assert silences.silencing({}, clock.now)  # missing labels are "": not web, not db…
    assert silences.silencing({"team": "web", "host": "app1"}, clock.now) is None
    assert silences.silencing({"host": "db7"}, clock.now) is None


def test_expiry_by_time_and_the_oldest_silence_wins(parts):
    db, writer, clock, silences = parts
    first = silences.add(parse_matchers(["host=db1"]), 600, "a", None)
    clock.now += 10
    second = silences.add(parse_matchers(['alertname=~"Disk.*"']), 3600, "b", None)
    assert silences.silencing(DB1_DISK, clock.now) == first
    assert [s.id for s in silences.active()] == [first.id, second.id]
    clock.now += 600
    assert silences.silencing(DB1_DISK, clock.now) == second  # the first one ended
    assert [s.id for s in silences.active()] == [second.id]
    writer.commit(db)
    silences.refresh(db, force=True)
    assert [s.id for s in silences.active()] == [second.id]


def test_expire_ends_at_once_and_is_stored(parts):
    db, writer, clock, silences = parts
    made = silences.add(parse_matchers(["host=db1"]), 600, "a", None)
    writer.commit(db)
    assert silences.expire("nosuch") is None
    assert silences.expire(made.id) == made
    assert silences.silencing(DB1_DISK, clock.now) is None
    assert silences.expire(made.id) is None  # already ended
    silences.refresh(db, force=True)  # not committed: still ended here
    assert silences.silencing(DB1_DISK, clock.now) is None
    writer.commit(db)
    assert load(db, clock.now) == []
    (stored,) = load(db, clock.now, ended_since=clock.now - 1)
    assert stored.until == clock.now
    silences.refresh(db, force=True)
    assert silences.active() == []


def test_expire_before_the_add_is_committed(parts):
    db, writer, _clock, silences = parts
    made = silences.add(parse_matchers(["host=db1"]), 600, "a", None)
    silences.expire(made.id)
    silences.refresh(db, force=True)
    assert silences.active() == []
    writer.ops[1:] = []  # the add committed, the end not yet
    writer.commit(db)
    silences.refresh(db, force=True)
    assert silences.active() == []  # the own end is kept


def test_ids_are_unique_among_silences(parts, monkeypatch):
    _, _, _, silences = parts
    tokens = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr("lcbot.silencing.secrets.token_hex", lambda n: next(tokens))
    first = silences.add(parse_matchers(["a=1"]), 60, "a", None)
    second = silences.add(parse_matchers(["a=2"]), 60, "a", None)
    assert (first.id, second.id) == ("aaaaaa", "bbbbbb")


def test_reload_reads_what_the_cli_wrote(parts):
    db, _writer, clock, silences = parts
    cli = make_silence(parse_matchers(["host=db2"]), 600, "ops", "cli", clock.now, lambda _: False)
    with transaction(db):
        save(db, cli)
    assert silences.silencing({"host": "db2"}, clock.now) is None
    silences.refresh(db)  # the first read: due
    assert silences.silencing({"host": "db2"}, clock.now) == cli
    with transaction(db):
        end(db, cli.id, clock.now)
    silences.refresh(db)  # within RELOAD: not read again
    assert silences.silencing({"host": "db2"}, clock.now) == cli
    silences.refresh(db, force=True)
    assert silences.silencing({"host": "db2"}, clock.now) is None


def test_uncommitted_own_changes_survive_a_reload_and_the_table_wins_after(parts):
    db, writer, clock, silences = parts
    mine = silences.add(parse_matchers(['msg="a \\"b\\"\\nc"', "host=~db[0-9]+"]), 600, "a", "x")
    silences.refresh(db, force=True)
    assert silences.active() == [mine]  # not in the table yet, kept
    writer.commit(db)
    silences.refresh(db, force=True)
    assert silences.active() == [mine]  # committed: the stored one equals it
    with transaction(db):  # the CLI expires it
        assert end(db, mine.id, clock.now)
    silences.refresh(db, force=True)
    assert silences.active() == []


def test_cli_expire_right_after_an_own_add_counts(parts):
    db, writer, clock, silences = parts
    mine = silences.add(parse_matchers(["host=db1"]), 600, "a", None)
    writer.commit(db)
    with transaction(db):  # before the bot read the table again
        assert end(db, mine.id, clock.now)
    silences.refresh(db, force=True)
    assert silences.active() == []


@pytest.mark.parametrize(
    ("matchers", "seconds", "comment", "message"),
    [
        ([], 60, None, "at least one matcher"),
        (["a=1"], 0, None, "positive duration"),
        (["a=1"], 60, "x" * 501, "at most 500"),
        ([f"a{i}=1" for i in range(21)], 60, None, "at most 20 matchers"),
        # Alertmanager's validateSilence: at least one matcher must not match the empty
        # string (its matchesEmpty: "=" with "", "=~" matching ""; negative ones never)
        (['a=""'], 60, None, "must not match the empty string"),
        (['a=""', 'b=~".*"'], 60, None, "must not match the empty string"),
        (['host=~"(db1)?"'], 60, None, "must not match the empty string"),
    ],
)
def test_bad_silences_are_refused(parts, matchers, seconds, comment, message):
    _, writer, _, silences = parts
    with pytest.raises(ValueError, match=message):
        silences.add(parse_matchers(matchers), seconds, "a", comment)
    assert writer.ops == [] and silences.active() == []


def test_a_negative_or_non_empty_matcher_makes_a_silence_valid(parts):
    silences = parts[3]
    for texts in (['a=""', "host=db1"], ["team!=web"], ['a=~".*"', 'host!~"db.*"']):
        assert silences.add(parse_matchers(texts), 60, "a", None).matchers
