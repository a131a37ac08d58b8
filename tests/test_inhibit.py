"""Inhibition: Alertmanager's results for the same rules and alerts (cases from
prometheus/alertmanager inhibit/inhibit_test.go TestInhibitRuleMatches and TestInhibit;
semantics from its configuration docs, "Inhibition-related settings")."""

from __future__ import annotations

import pytest

from lcbot.errors import ConfigError
from lcbot.inhibit import Inhibitor, parse_rules


class Writer:
    def __init__(self):
        self.ops = []

    def record(self, op, *args):
        self.ops.append((op.__name__, args))


def inhibitor(*rules):
    return Inhibitor(parse_rules(list(rules), "lcbot.toml: alerts.inhibit"), Writer())


def rule(source, target, equal=("e",)):
    return {"source_matchers": source, "target_matchers": target, "equal": list(equal)}


def test_rule_matches_as_alertmanager():
    ih = inhibitor(rule(["s1=1"], ["t1=1"]), rule(["s2=1"], ["t2=1"]))
    ih.observe({"s1": "1", "t1": "2", "e": "1"}, False, 0)  # source of rule 1 only
    ih.observe({"s2": "1", "t2": "1", "e": "1"}, False, 0)  # both sides of rule 2
    cases = [
        ({"t1": "1", "e": "1"}, True),
        ({"t2": "1", "e": "1"}, True),
        ({"t1": "1", "t3": "1", "e": "1"}, True),
        ({"t1": "1", "t2": "1", "e": "1"}, True),
        ({"t1": "0", "e": "1"}, False),
        ({"s1": "1", "t1": "1", "e": "1"}, True),  # its source matches one side only
        ({"s2": "1", "t2": "1", "e": "1"}, False),  # both sides: not by one matching both
        ({"t1": "1", "e": "0"}, False),  # equal label differs
    ]
    for labels, expected in cases:
        assert (ih.inhibited(labels) is not None) is expected, labels


def test_a_resolved_source_stops_inhibiting_and_missing_equals_missing():
    ih = inhibitor(rule(["s=1"], ["t=1"]))
    target = {"t": "1", "e": "f"}
    assert ih.check(target, False, 0) is None  # no source fired yet
    assert ih.check({"s": "1", "e": "f"}, False, 0) is None  # a source is not its own target
    by = ih.check(target, False, 1)
    assert by is not None and by.labels == {"s": "1", "e": "f"}
    assert ih.check({"s": "1", "e": "f"}, True, 2) is None  # resolved
    assert ih.check(target, False, 3) is None
    assert [name for name, _ in ih.writer.ops] == ["save_source", "delete_source"]
    ih.observe({"s": "1"}, False, 4)  # no `e` on either side: equal
    assert ih.inhibited({"t": "1"}) is not None
    assert ih.inhibited({"t": "1", "e": "x"}) is None


@pytest.mark.parametrize(
    ("entry", "part"),
    [
        (rule(['alertname="HostDown'], ["t=1"]), "alerts.inhibit[0].source_matchers[0]:"),
        (rule(["s=1"], []), "alerts.inhibit[0].target_matchers: give at least one"),
        ({"source_matchers": ["s=1"]}, "target_matchers is missing"),
        (rule(["s=1"], ["t=1"], equal=["bad-name"]), "alerts.inhibit[0].equal"),
        ({**rule(["s=1"], ["t=1"]), "source_match": {}}, "unknown key(s) ['source_match']"),
    ],
)
def test_bad_rules_name_file_and_key(entry, part):
    with pytest.raises(ConfigError) as raised:
        parse_rules([entry], "lcbot.toml: alerts.inhibit")
    assert part in str(raised.value) and str(raised.value).startswith("lcbot.toml: ")
