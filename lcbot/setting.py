"""How a configuration key is described and checked: ``Setting`` and ``Section``.

lcbot's own sections are declared with these in ``lcbot.schema``; plugins describe their
section the same way (the ``config_schema`` hook). A bad value is a ``ConfigError`` in one
style: ``FILE: section.key: expected …, got …``. Unknown keys in a known section are not
errors (a newer version may know them): ``unknown_keys`` lists them for ``config check``
and the log of ``lcbot run``.
"""

from __future__ import annotations

import re
from typing import Any

from lcbot.errors import ConfigError

# kinds beyond the Python types str, int, float, bool and list (of texts)
SECONDS = "seconds"  # a number of seconds
DURATION = "duration"  # "30d", "12h", "90m", or a number of seconds
DURATION_OFF = "duration_or_off"  # a duration, or "off" / "" (None: off)
LISTEN = "listen"  # "HOST:PORT" → (host, port)
PATH = "path"
VARIABLE = "variable"  # the name of an environment variable
TABLE = "table"  # a table of texts: keys ``keys`` (any if empty), values ``choices``
INHIBIT_RULES = "inhibit_rules"  # [[alerts.inhibit]]: lcbot.inhibit.parse_rules


class Setting:
    """One key of a section: ``Setting("interval", int, 60, "seconds between checks", min=1)``.

    ``kind``: ``str``, ``int``, ``float`` (any number), ``bool``, ``list`` (of texts), or
    one of ``SECONDS``, ``DURATION``, ``DURATION_OFF``, ``LISTEN``, ``PATH``, ``VARIABLE``,
    ``TABLE``.
    ``choices`` limits texts (and a table's values), ``min``/``max`` numbers. ``type_doc``
    and ``default_doc`` override how the README table shows them. (A plain class, not a
    dataclass: the schema is built by every CLI command, and dataclasses cost start-up.)
    """

    __slots__ = (
        "choices",
        "default",
        "default_doc",
        "doc",
        "key",
        "keys",
        "keys_name",
        "kind",
        "max",
        "min",
        "type_doc",
    )

    def __init__(
        self,
        key: str,
        kind: Any,
        default: Any,
        doc: str,
        choices: tuple[str, ...] = (),
        min: float | None = None,
        max: float | None = None,
        keys: tuple[str, ...] = (),
        keys_name: str = "key",  # what a table's keys are, for messages and the README
        type_doc: str = "",
        default_doc: str = "",
    ) -> None:
        self.key, self.kind, self.default, self.doc = key, kind, default, doc
        self.choices, self.min, self.max = tuple(choices), min, max
        self.keys, self.keys_name = tuple(keys), keys_name
        self.type_doc, self.default_doc = type_doc, default_doc

    def __repr__(self) -> str:
        return f"Setting({self.key!r}, {self.kind!r}, {self.default!r})"

    def parse(self, value: Any, where: str) -> Any:
        """The checked value; ConfigError ``where.key: expected …, got …`` otherwise."""
        name = f"{where}.{self.key}"
        parse = _PARSERS.get(self.kind)
        if parse is None:
            raise TypeError(f"setting {name}: unknown kind {self.kind!r}")
        result = parse(self, value, name)
        if self.choices and self.kind is str and result not in self.choices:
            raise ConfigError(f"{name}: expected one of {', '.join(self.choices)}, got {value!r}")
        if isinstance(result, int | float) and not isinstance(result, bool):
            low, high = self.min, self.max
            if (low is not None and result < low) or (high is not None and result > high):
                raise ConfigError(f"{name}: expected {self.describe()}, got {value!r}")
        return result

    def describe(self) -> str:
        """The type as the README shows it, e.g. ``integer ≥ 1``."""
        if self.type_doc:
            return self.type_doc
        if self.choices and self.kind in (str, TABLE):
            return ", ".join(f"`{c}`" for c in self.choices)
        base = {
            str: "text",
            int: "integer",
            float: "number",
            bool: "boolean",
            list: "list of texts",
            SECONDS: "seconds",
            DURATION: "duration (`30d`, `12h`, `90m`)",
            DURATION_OFF: "duration or `off`",
            LISTEN: "`HOST:PORT`",
            PATH: "path",
            VARIABLE: "variable name",
            INHIBIT_RULES: "array of tables",
        }[self.kind]
        if self.min is not None and self.max is not None:
            return f"{base} {_number(self.min)}-{_number(self.max)}"
        if self.min is not None:
            return f"{base} ≥ {_number(self.min)}"
        return base

    def describe_default(self) -> str:
        if self.default_doc:
            return self.default_doc
        value = self.default
        if value is None:
            return "none"
        if isinstance(value, bool):
            return f"`{str(value).lower()}`"
        if isinstance(value, int | float):
            return _number(value)
        if isinstance(value, list | tuple):
            return "`[" + ", ".join(f'"{v}"' for v in value) + "]`"
        if self.choices:
            return f"`{value}`"
        return f'`"{value}"`'


class Section:
    """A table of lcbot.toml; ``forbidden`` keys are refused with their message."""

    __slots__ = ("forbidden", "name", "settings")

    def __init__(
        self, name: str, settings: tuple[Setting, ...], forbidden: dict[str, str] | None = None
    ) -> None:
        self.name, self.settings, self.forbidden = name, tuple(settings), dict(forbidden or {})

    def load(self, table: Any, where: str) -> dict[str, Any]:
        """Every setting's value (the default when absent), checked."""
        if table is None:
            table = {}
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{self.name}] must be a table")
        for key, message in self.forbidden.items():
            if key in table:
                raise ConfigError(f"{where}: [{self.name}] {key}: {message}")
        prefix = f"{where}: {self.name}"
        return {
            s.key: s.parse(table[s.key], prefix) if s.key in table else s.default
            for s in self.settings
        }

    def unknown_keys(self, table: Any) -> list[str]:
        known = {s.key for s in self.settings} | set(self.forbidden)
        return sorted(k for k in table if k not in known) if isinstance(table, dict) else []


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _expect(ok: bool, what: str, value: Any, name: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: expected {what}, got {value!r}")


def _text(s: Setting, value: Any, name: str) -> str:
    _expect(isinstance(value, str), "str", value, name)
    return value


def _integer(s: Setting, value: Any, name: str) -> int:
    _expect(isinstance(value, int) and not isinstance(value, bool), "int", value, name)
    return value


def _float(s: Setting, value: Any, name: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    _expect(ok, "a number" if s.kind is float else "seconds (a number)", value, name)
    return float(value)


def _boolean(s: Setting, value: Any, name: str) -> bool:
    _expect(isinstance(value, bool), "true or false", value, name)
    return value


def _texts(s: Setting, value: Any, name: str) -> tuple[str, ...]:
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    _expect(ok, "a list of texts", value, name)
    return tuple(value)


def _duration(s: Setting, value: Any, name: str) -> float:
    from lcbot.durations import parse_duration

    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    try:
        return parse_duration(value) if isinstance(value, str) else parse_duration("")
    except ValueError:
        raise ConfigError(
            f"{name}: expected a duration such as 30d or 12h, got {value!r}"
        ) from None


def _duration_off(s: Setting, value: Any, name: str) -> float | None:
    if value in ("", "off", "0", 0) and not isinstance(value, bool):
        return None
    try:
        return _duration(s, value, name)
    except ConfigError:
        raise ConfigError(
            f"{name}: expected a duration such as 20h, or off, got {value!r}"
        ) from None


def _listen(s: Setting, value: Any, name: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    ok = bool(host) and re.fullmatch(r"[0-9]{1,5}", port) is not None and int(port) <= 65535
    _expect(ok, "HOST:PORT", value, name)
    return host.strip("[]"), int(port)


def _variable(s: Setting, value: Any, name: str) -> str:
    _expect(isinstance(value, str) and bool(value), "a variable name", value, name)
    return value


def _table(s: Setting, value: Any, name: str) -> dict[str, str]:
    _expect(isinstance(value, dict), "a table", value, name)
    unknown = sorted(k for k in value if s.keys and k not in s.keys)
    if unknown:
        what = s.keys_name
        raise ConfigError(f"{name}: unknown {what}(s) {unknown}; known: {', '.join(s.keys)}")
    for key, item in value.items():
        if not isinstance(item, str) or (s.choices and item not in s.choices):
            raise ConfigError(f"{name}.{key}: expected one of {', '.join(s.choices)}, got {item!r}")
    return {**(s.default or {}), **value}


def _inhibit_rules(s: Setting, value: Any, name: str) -> Any:
    from lcbot.inhibit import parse_rules

    return parse_rules(value, name)


_PARSERS = {
    str: _text,
    int: _integer,
    float: _float,
    bool: _boolean,
    list: _texts,
    SECONDS: _float,
    DURATION: _duration,
    DURATION_OFF: _duration_off,
    LISTEN: _listen,
    PATH: _text,
    VARIABLE: _variable,
    TABLE: _table,
    INHIBIT_RULES: _inhibit_rules,
}


def check_schema(settings: Any) -> list[Setting]:
    """What a plugin's ``config_schema()`` returned, checked: a list of ``Setting`` of known
    kinds with distinct keys (``TypeError`` otherwise: the plugin is disabled)."""
    items = list(settings or [])
    keys = set()
    for s in items:
        if not isinstance(s, Setting):
            raise TypeError(f"config_schema() must return Setting objects, not {s!r}")
        if s.kind not in _PARSERS:
            raise TypeError(f"setting {s.key!r}: unknown kind {s.kind!r}")
        if s.key in keys:
            raise TypeError(f"setting {s.key!r} is declared twice")
        keys.add(s.key)
    return items
