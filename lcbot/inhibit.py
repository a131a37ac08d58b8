"""Inhibition, as in Alertmanager: ``[[alerts.inhibit]]`` rules mute alerts (targets) while
another alert (a source) fires.

A rule has ``source_matchers``, ``target_matchers`` (lists of matcher texts, see
``lcbot.matchers``) and ``equal`` (label names). An alert is inhibited when it matches a
rule's target matchers and a firing alert matches its source matchers with the same values
for every ``equal`` label — a missing label is the same as an empty one, so labels missing
on both sides are equal. An alert that matches both sides of a rule is not inhibited by
alerts that do too (itself included). Alertmanager's docs: "Inhibition-related settings".

The firing sources are the alerts seen that match some rule's source matchers, by the
fingerprint of their labels, until one with the same labels comes resolved. They are kept
in memory and in the ``inhibit_sources`` table (written through the bot's writer), so a
restart keeps them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lcbot.db.labels import delete_source, load_sources, save_source
from lcbot.errors import ConfigError
from lcbot.labels import fingerprint
from lcbot.matchers import InvalidMatcher, Matcher, matches_all, parse_matcher

RULE_KEYS = ("source_matchers", "target_matchers", "equal")
_NAME = "[a-zA-Z_][a-zA-Z0-9_]*"


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def equal_values(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(labels.get(name, "") for name in self.equal)


def _matchers(value: Any, where: str) -> tuple[Matcher, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of matcher texts, got {value!r}")
    if not value:
        raise ConfigError(f"{where}: give at least one matcher, such as 'alertname=\"HostDown\"'")
    found = []
    for i, text in enumerate(value):
        try:
            found.append(parse_matcher(text))
        except InvalidMatcher as exc:
            raise ConfigError(f"{where}[{i}]: {exc}") from None
    return tuple(found)


def parse_rules(value: Any, where: str) -> tuple[InhibitRule, ...]:
    """``[[alerts.inhibit]]`` checked; ConfigError names the file, the rule and the key."""
    import re

    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: expected an array of tables ([[alerts.inhibit]])")
    rules = []
    for i, entry in enumerate(value):
        at = f"{where}[{i}]"
        unknown = sorted(set(entry) - set(RULE_KEYS))
        if unknown:
            raise ConfigError(f"{at}: unknown key(s) {unknown}; known: {', '.join(RULE_KEYS)}")
        for key in RULE_KEYS[:2]:
            if key not in entry:
                raise ConfigError(f"{at}: {key} is missing")
        equal = entry.get("equal", [])
        if not isinstance(equal, list) or not all(
            isinstance(n, str) and re.fullmatch(_NAME, n) for n in equal
        ):
            raise ConfigError(f"{at}.equal: expected a list of label names, got {equal!r}")
        rules.append(
            InhibitRule(
                _matchers(entry["source_matchers"], f"{at}.source_matchers"),
                _matchers(entry["target_matchers"], f"{at}.target_matchers"),
                tuple(equal),
            )
        )
    return tuple(rules)


# --- the running bot ------------------------------------------------------------------------


class Recorder(Protocol):
    def record(self, op: Callable[..., Any], *args: Any) -> None: ...


@dataclass(frozen=True)
class Inhibition:
    """Why an alert is inhibited: the source's fingerprint and labels."""

    source: str
    labels: dict[str, str]


class Inhibitor:
    """The rules and the firing sources (event loop only)."""

    def __init__(self, rules: tuple[InhibitRule, ...], writer: Recorder) -> None:
        self.rules = rules
        self.writer = writer
        self.sources: dict[str, dict[str, str]] = {}

    def open(self, db: sqlite3.Connection) -> None:
        """Load the firing sources (none are kept without rules)."""
        self.sources = dict(load_sources(db)) if self.rules else {}

    def observe(self, labels: Mapping[str, str], resolved: bool, now: float) -> None:
        """Note an alert seen: a firing source starts inhibiting, a resolved one stops."""
        if not labels or not any(matches_all(r.source, labels) for r in self.rules):
            return
        fp = fingerprint(labels)
        if resolved:
            if self.sources.pop(fp, None) is not None:
                self.writer.record(delete_source, fp)
        elif fp not in self.sources:
            self.sources[fp] = dict(labels)
            self.writer.record(save_source, fp, dict(labels), now)

    def inhibited(self, labels: Mapping[str, str]) -> Inhibition | None:
        """The firing source that inhibits an alert with ``labels``, or None."""
        for rule in self.rules:
            if not matches_all(rule.target, labels):
                continue
            two_sided = matches_all(rule.source, labels)
            wanted = rule.equal_values(labels)
            for fp, source in self.sources.items():
                if not matches_all(rule.source, source):
                    continue
                if two_sided and matches_all(rule.target, source):
                    continue  # both sides: not inhibited by alerts matching both (itself)
                if rule.equal_values(source) == wanted:
                    return Inhibition(fp, source)
        return None

    def check(self, labels: Mapping[str, str], resolved: bool, now: float) -> Inhibition | None:
        """``observe`` then ``inhibited``. As in Alertmanager, a resolved target is
        inhibited too while its source fires (nobody was told it fired)."""
        if not self.rules:
            return None
        self.observe(labels, resolved, now)
        return self.inhibited(labels)
