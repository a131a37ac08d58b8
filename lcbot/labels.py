"""Alert labels: a stable ``fingerprint`` of a label set and a compact ``format_labels``.

Labels are checked by ``lcbot.alerts.make_alert`` (names ``[a-zA-Z_][a-zA-Z0-9_]*``, text
values; an empty value is an absent label, as in Alertmanager).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

FINGERPRINT_LENGTH = 12  # hex digits: 48 bits, ample for the alerts one bot sees


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable short hex id of the label set (the order of the labels does not matter)."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:FINGERPRINT_LENGTH]


def _value(value: str) -> str:
    """A value as shown: bare when it is one plain word, else quoted with escapes."""
    if value and all(ch.isalnum() or ch in "_-.:/@" for ch in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def format_labels(labels: Mapping[str, str]) -> str:
    """Labels compactly, sorted by name: ``host=db1 team=web`` (empty for none)."""
    return " ".join(f"{name}={_value(labels[name])}" for name in sorted(labels))
