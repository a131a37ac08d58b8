"""Alert labels: checked by ``make_alert``, stored and loaded with the alert, a stable
fingerprint of the set, a compact form for messages."""

from __future__ import annotations

import pytest

from lcbot.alerts import InvalidAlert, alert_from_row, make_alert
from lcbot.db import DB_NAME, connect, transaction
from lcbot.db import alerts as alerts_sql
from lcbot.labels import fingerprint, format_labels


def test_labels_default_empty_and_checked():
    assert make_alert("x").labels == {}
    alert = make_alert("x", labels={"host": "db1", "team": "web", "empty": ""})
    assert alert.labels == {"host": "db1", "team": "web"}  # empty value = absent label


@pytest.mark.parametrize(
    ("labels", "part"),
    [
        (["host=db1"], "mapping"),
        ({"1host": "db1"}, "'1host'"),
        ({"ho-st": "db1"}, "'ho-st'"),
        ({"": "x"}, "''"),
        ({"host": 1}, "host must be a text"),
        ({"host": "x" * 201}, "longer than 200"),
        ({f"l{i}": "v" for i in range(33)}, "at most 32"),
        ({"host": "\udcff"}, "not valid text"),
    ],
)
def test_bad_labels_name_the_field(labels, part):
    with pytest.raises(InvalidAlert) as raised:
        make_alert("x", labels=labels)
    assert raised.value.field == "labels"
    assert part in str(raised.value)


def test_fingerprint_is_stable_short_hex_of_the_set():
    a = fingerprint({"host": "db1", "alertname": "DiskFull"})
    assert a == fingerprint({"alertname": "DiskFull", "host": "db1"})
    assert a != fingerprint({"alertname": "DiskFull", "host": "db2"})
    assert a != fingerprint({"alertname": "DiskFull"})
    assert len(a) == 12 and int(a, 16) >= 0
    # the same id in every process: not Python's salted hash
    assert fingerprint({}) == "4f53cda18c2b"


def test_format_labels():
    assert format_labels({}) == ""
    assert format_labels({"team": "web", "host": "db1"}) == "host=db1 team=web"
    assert format_labels({"path": "/var/log x"}) == 'path="/var/log x"'


def test_labels_stored_and_loaded(tmp_path):
    db = connect(tmp_path / DB_NAME)
    new = make_alert("disk", labels={"host": "db1"})
    plain = make_alert("plain")
    with transaction(db):
        ids = alerts_sql.insert_new(db, [new, plain])
    rows = alerts_sql.take_new(db, 0, 10)
    assert [alert_from_row(row).labels for row in rows] == [{"host": "db1"}, {}]
    assert [alert_from_row(row).id for row in rows] == ids
    routed = make_alert("routed", labels={"job": "train"})
    routed.outcome = {"state": "sent"}
    with transaction(db):
        alerts_sql.insert_routed(db, routed)
    assert [item["labels"] for item in alerts_sql.recent(db, 3)] == [
        {"job": "train"},
        {},
        {"host": "db1"},
    ]
