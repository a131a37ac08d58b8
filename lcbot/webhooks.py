"""What the HTTP ingress accepts: a ``POST /alert`` body (checked strictly: a bad field is
a 400 naming it), an Alertmanager webhook (version 4), where an entry never fails its
batch, and a ``POST /heartbeat/KEY`` beat. Pure functions, no HTTP: ``lcbot.ingress``
serves them."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from lcbot.alerts import (
    LABEL_NAME,
    MAX_LABEL_NAME,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_TEXT,
    MAX_TITLE,
    Alert,
    InvalidAlert,
    is_blank,
    make_alert,
)
from lcbot.beats import InvalidBeat, check_beat, parse_period
from lcbot.schema import LEVELS

MAX_ENTRIES = 1000  # Alertmanager entries kept per webhook; the rest are counted in one alert
ALERT_FIELDS = {
    "text": str,
    "level": str,
    "title": str,
    "key": str,
    "resolved": bool,
    "labels": dict,
}
HEARTBEAT_FIELDS = ("every", "grace", "level")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class BadRequest(Exception):
    """Answered with 400 and this message."""


def _check_unicode(value: Any, field: str) -> None:
    """Texts must be storable: no lone surrogates (JSON allows them, UTF-8 does not)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"field '{field}' is not valid Unicode") from None


def _checked(where: str, **fields: Any) -> Alert:
    """``make_alert`` with its error turned into a 400 naming the field."""
    try:
        return make_alert(**fields)
    except InvalidAlert as exc:
        raise BadRequest(f"field '{where}{exc.field}': {exc}") from None


def parse_alert(body: Any) -> Alert:
    """Validate a ``POST /alert`` body → an ``Alert`` (source ``http``)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    for name in body:
        if name not in ALERT_FIELDS:
            raise BadRequest(f"unknown field '{name}'")
    for name, kind in ALERT_FIELDS.items():
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            raise BadRequest(f"field '{name}' must be a {kind.__name__}")
    for name in ("text", "title", "key"):
        _check_unicode(body.get(name), name)
    text = body.get("text")
    if not text or not text.strip():
        raise BadRequest("field 'text' is required")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"field 'text' is longer than {MAX_TEXT} characters")
    return _checked(
        "",
        text=text,
        level=body.get("level", "info"),
        title=body.get("title"),
        key=body.get("key"),
        resolved=bool(body.get("resolved")),
        source="http",
        labels=body.get("labels"),
    )


def _short_key(key: str) -> str:
    """Alertmanager keys from many labels can be long: keep them within ``MAX_TITLE``."""
    if len(key) <= MAX_TITLE:
        return key
    return key[: MAX_TITLE - 17] + "#" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _storable(text: str) -> str:
    """``text`` with lone surrogates (JSON allows them, UTF-8 does not) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _as_json(value: Any) -> str:
    """A JSON value as compact, storable JSON text."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return _storable(text)


def _as_text(value: Any) -> str:
    """A JSON value as storable text: a text as it is, anything else as compact JSON."""
    return _storable(value) if isinstance(value, str) else _as_json(value)


def _visible(value: Any) -> str | None:
    """A text that shows something (stripped and storable), else None."""
    if not isinstance(value, str) or is_blank(value):
        return None
    return _storable(value).strip()


def _labels(raw: Any) -> dict[str, str]:
    """An entry's labels as texts: other values as JSON, null ones left out; labels that
    are not an object become one label ``labels`` holding their JSON."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        return {"labels": _as_text(raw)}
    return {_storable(k): _as_text(v) for k, v in raw.items() if v is not None}


def _label_set(labels: dict[str, str]) -> dict[str, str]:
    """An entry's labels as an alert's: names made valid (other characters become ``_``, as
    Prometheus does), values cut to ``MAX_LABEL_VALUE``, blank ones left out, the first
    ``MAX_LABELS`` by name — never an error (an entry never fails its batch)."""
    kept: dict[str, str] = {}
    for name in sorted(labels):
        value = labels[name][:MAX_LABEL_VALUE]
        valid = re.sub(r"[^a-zA-Z0-9_]", "_", name)[:MAX_LABEL_NAME]
        if not LABEL_NAME.fullmatch(valid):
            valid = ("_" + valid)[:MAX_LABEL_NAME]
        if not is_blank(value) and valid not in kept and len(kept) < MAX_LABELS:
            kept[valid] = value
    return kept


def _am_alert(entry: Any, severity: dict[str, str]) -> Alert:
    """One Alertmanager entry → an alert, whatever it holds (see ``parse_alertmanager``)."""
    if not isinstance(entry, dict):
        raw = _as_json(entry)
        digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
        return make_alert(
            f"unreadable Alertmanager alert: {raw}"[:MAX_TEXT],
            level="warning",
            key=f"alertmanager:{digest}",
            source="alertmanager",
        )
    labels = _labels(entry.get("labels"))
    annotations = entry.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
    name = _visible(labels.get("alertname"))
    key = _visible(entry.get("fingerprint")) or (name or "alert") + "".join(
        f",{k}={v}" for k, v in sorted(labels.items()) if k != "alertname"
    )
    summary = _visible(annotations.get("summary")) or _visible(annotations.get("description"))
    where_labels = ", ".join(
        f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
    )
    status = "resolved" if entry.get("status") == "resolved" else "firing"
    text = " — ".join(part for part in (summary, where_labels) if part) or name
    return make_alert(
        (text or f"{status} Alertmanager alert without a name, summary or labels")[:MAX_TEXT],
        level=severity.get(labels.get("severity", ""), "warning"),
        title=name[:MAX_TITLE] if name else None,
        key=_short_key(key),
        resolved=status == "resolved",
        source="alertmanager",
        labels=_label_set(labels),
    )


def parse_alertmanager(body: Any, severity: dict[str, str]) -> list[Alert]:
    """Alertmanager webhook (version 4) → one alert per entry. Only a body that is not a
    webhook is refused (400): an entry never fails its batch. The text falls back from the
    ``summary`` and ``description`` annotations (texts only) to the labels, the alertname
    and the status; a status other than ``resolved`` is firing; a non-text fingerprint is
    ignored (the key comes from the labels); an entry that is not an object becomes a
    warning showing its JSON; lone surrogates become U+FFFD."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    entries = body.get("alerts")
    if not isinstance(entries, list) or not entries:
        raise BadRequest("field 'alerts' must be a non-empty list")
    alerts = [_am_alert(entry, severity) for entry in entries[:MAX_ENTRIES]]
    if len(entries) > MAX_ENTRIES:
        alerts.append(_overflow(body, entries[MAX_ENTRIES:], severity))
    return alerts


def _overflow(body: dict, dropped: list, severity: dict[str, str]) -> Alert:
    """One alert counting the entries over ``MAX_ENTRIES``, at the highest of their levels."""
    levels = {
        severity.get(str(entry.get("labels", {}).get("severity", "")), "warning")
        if isinstance(entry, dict) and isinstance(entry.get("labels"), dict)
        else "warning"
        for entry in dropped
    }
    level = max(levels, key=LEVELS.index)
    group = _visible(body.get("groupKey")) or "alertmanager"
    return make_alert(
        f"{len(dropped)} more alerts of this Alertmanager webhook were not kept (at most "
        f"{MAX_ENTRIES} per webhook: set max_alerts in the webhook receiver)",
        level=level,
        title="Alertmanager batch cut",
        key=_short_key(f"alertmanager-overflow:{group}"),
        source="alertmanager",
    )


def _seconds(value: Any, name: str, zero: bool = False) -> Any:
    """A duration field: ``"1h"``, ``"90s"`` or a number of seconds."""
    if isinstance(value, str):
        try:
            return parse_period(value, name, zero)
        except InvalidBeat as exc:
            raise BadRequest(f"field '{name}': {exc.reason}") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise BadRequest(f"field '{name}' must be a duration such as \"1h\" or a number of seconds")


def parse_heartbeat(key: str, query: Mapping[str, str], body: Any) -> tuple[str, float, float, str]:
    """``POST /heartbeat/KEY`` → ``(key, every, grace, level)``: ``every`` (required),
    ``grace`` (default 0) and ``level`` (default ``warning``) from the query string or a
    JSON object body (``None``: no body), each given once."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object (or empty)")
    fields: dict[str, Any] = {}
    for given in (query.items(), body.items()):
        for name, value in given:
            if name not in HEARTBEAT_FIELDS:
                raise BadRequest(f"unknown field '{_storable(str(name))[:40]}'")
            if name in fields:
                raise BadRequest(f"field '{name}' given twice")
            fields[name] = value
    if "every" not in fields:
        raise BadRequest("field 'every' is required (e.g. ?every=1h)")
    every = _seconds(fields["every"], "every")
    grace = _seconds(fields.get("grace", 0), "grace", zero=True)
    try:
        return check_beat(key, every, grace, fields.get("level", "warning"))
    except InvalidBeat as exc:
        where = "the path's KEY" if exc.field == "key" else f"field '{exc.field}'"
        raise BadRequest(f"{where}: {exc.reason}") from None
