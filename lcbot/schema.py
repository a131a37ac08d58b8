"""The configuration schema: every section and key of lcbot.toml, with type, default, meaning.

One description drives loading (``config.validate`` fills defaults and names the bad key),
``lcbot config check``, each component's settings, and the README's configuration table
(``python -m lcbot.schema`` prints it; a docs test compares). Plugins describe their own
section the same way, with ``Setting`` (see the ``config_schema`` hook).

Unknown keys in a known section are not errors (a newer lcbot may know them): they are
listed by ``unknown_keys`` for ``config check`` and the log of ``lcbot run``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lcbot.errors import ConfigError

LEVELS = ("info", "warning", "critical")
PRIVILEGES = ("root", "admin", "user")
TRANSPORTS = ("auto", "console", "wechaty")

# kinds beyond the Python types str, int, float, bool and list (of texts)
SECONDS = "seconds"  # a number of seconds
DURATION = "duration"  # "30d", "12h", "90m", or a number of seconds
LISTEN = "listen"  # "HOST:PORT" → (host, port)
PATH = "path"
VARIABLE = "variable"  # the name of an environment variable
TABLE = "table"  # a table of texts: keys ``keys`` (any if empty), values ``choices``


@dataclass(frozen=True)
class Setting:
    """One key of a section: ``Setting("interval", int, 60, "seconds between checks", min=1)``.

    ``kind``: ``str``, ``int``, ``float`` (any number), ``bool``, ``list`` (of texts), or
    one of ``SECONDS``, ``DURATION``, ``LISTEN``, ``PATH``, ``VARIABLE``, ``TABLE``.
    ``choices`` limits texts (and a table's values), ``min``/``max`` numbers. ``type_doc``
    and ``default_doc`` override how the README table shows them.
    """

    key: str
    kind: Any
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    keys: tuple[str, ...] = ()
    type_doc: str = ""
    default_doc: str = ""

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
            LISTEN: "`HOST:PORT`",
            PATH: "path",
            VARIABLE: "variable name",
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


@dataclass(frozen=True)
class Section:
    """A table of lcbot.toml; ``forbidden`` keys are refused with their message."""

    name: str
    settings: tuple[Setting, ...]
    forbidden: dict[str, str] = field(default_factory=dict)

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
        what = TABLE_KEYS.get(s.key, "<key>").strip("<>")
        raise ConfigError(f"{name}: unknown {what}(s) {unknown}; known: {', '.join(s.keys)}")
    for key, item in value.items():
        if not isinstance(item, str) or (s.choices and item not in s.choices):
            raise ConfigError(f"{name}.{key}: expected one of {', '.join(s.choices)}, got {item!r}")
    return {**(s.default or {}), **value}


_PARSERS = {
    str: _text,
    int: _integer,
    float: _float,
    bool: _boolean,
    list: _texts,
    SECONDS: _float,
    DURATION: _duration,
    LISTEN: _listen,
    PATH: _text,
    VARIABLE: _variable,
    TABLE: _table,
}

# --- lcbot's own sections ------------------------------------------------------------------

WECHAT_PACE = "WeChat {}, console 0"
TOKEN_IN_FILE = "never store the token in lcbot.toml; put it in the variable named by token_env"

SCHEMA: dict[str, Section] = {
    s.name: s
    for s in (
        Section(
            "bot",
            (
                Setting("name", str, "lcbot", "the bot's name"),
                Setting(
                    "transport",
                    str,
                    "auto",
                    "where messages come from and go to; `auto` is the console until WeChat "
                    "is configured",
                    choices=TRANSPORTS,
                ),
                Setting(
                    "data_dir",
                    PATH,
                    ".lcbot",
                    "lcbot's state, relative to the config file",
                    default_doc="`.lcbot`",
                ),
                Setting("workers", int, 8, "thread pool size for plain-def handlers", min=1),
                Setting(
                    "slow_notice",
                    SECONDS,
                    10.0,
                    "when a slow command tells the user it is still running (0: never)",
                    min=0,
                ),
            ),
        ),
        Section(
            "plugins",
            (
                Setting(
                    "dirs",
                    list,
                    ("plugins",),
                    "folders searched for plugins",
                    type_doc="list of paths",
                ),
                Setting("disable", list, (), "plugins not loaded", type_doc="list of names"),
            ),
        ),
        Section(
            "alerts",
            (
                Setting(
                    "repeat_interval", SECONDS, 1800.0, "de-duplication window per alert key", min=0
                ),
                Setting(
                    "fallback_after",
                    SECONDS,
                    300.0,
                    "transport downtime before critical alerts also go to the fallback",
                    min=0,
                ),
                Setting(
                    "fallback_urls",
                    list,
                    (),
                    "fallback channel (extra `lcbot[apprise]`)",
                    type_doc="list of apprise URLs",
                ),
                Setting(
                    "routes",
                    TABLE,
                    {"critical": "user", "warning": "admin", "info": "root"},
                    "least privilege that receives alerts of that level",
                    choices=PRIVILEGES,
                    keys=LEVELS,
                    default_doc="critical `user`, warning `admin`, info `root`",
                ),
            ),
        ),
        Section(
            "ratelimit",
            (
                Setting(
                    "per_second",
                    int,
                    None,
                    "messages per second overall (0: no limit)",
                    min=0,
                    type_doc="whole number ≥ 0",
                    default_doc=WECHAT_PACE.format(1),
                ),
                Setting(
                    "per_minute",
                    int,
                    None,
                    "messages per minute overall",
                    min=0,
                    type_doc="whole number ≥ 0",
                    default_doc=WECHAT_PACE.format(40),
                ),
                Setting(
                    "per_recipient_gap",
                    SECONDS,
                    None,
                    "pause between two messages to one recipient",
                    min=0,
                    default_doc=WECHAT_PACE.format(3),
                ),
                Setting(
                    "max_chars",
                    int,
                    2000,
                    "longest coalesced message; longer texts are split at line breaks",
                    min=20,
                ),
                Setting("max_attempts", int, 20, "failed sends before a message is dead", min=1),
            ),
        ),
        Section(
            "wechaty",
            (
                Setting(
                    "endpoint",
                    str,
                    "",
                    "the puppet service",
                    type_doc="`host:port`",
                    default_doc="`$WECHATY_PUPPET_SERVICE_ENDPOINT`",
                ),
                Setting(
                    "token_env",
                    VARIABLE,
                    "WECHATY_PUPPET_SERVICE_TOKEN",
                    "where the token is read from (a `token` key is refused)",
                    default_doc="`WECHATY_PUPPET_SERVICE_TOKEN`",
                ),
                Setting(
                    "port",
                    int,
                    0,
                    "python-wechaty's plugin web port, on 127.0.0.1",
                    min=0,
                    max=65535,
                    type_doc="0-65535",
                    default_doc="0 (free port)",
                ),
                Setting(
                    "rooms",
                    str,
                    "off",
                    "commands in group chats when the bot is @-mentioned",
                    choices=("off", "mention"),
                ),
                Setting(
                    "room_replies",
                    str,
                    "room",
                    "where answers to group commands go",
                    choices=("room", "private"),
                ),
            ),
            forbidden={"token": TOKEN_IN_FILE},
        ),
        Section(
            "security",
            (
                Setting(
                    "identity",
                    str,
                    "id",
                    "recognise users by contact id (with pairing) or by display name",
                    choices=("id", "name"),
                ),
            ),
        ),
        Section(
            "ingress",
            (
                Setting("enabled", bool, False, "start the HTTP listener with `lcbot run`"),
                Setting(
                    "listen",
                    LISTEN,
                    ("127.0.0.1", 8789),
                    "where it listens; non-loopback needs a token",
                    default_doc="`127.0.0.1:8789`",
                ),
                Setting(
                    "token_env",
                    VARIABLE,
                    "LCBOT_INGRESS_TOKEN",
                    "the bearer token's variable (a `token` key is refused)",
                    default_doc="`LCBOT_INGRESS_TOKEN`",
                ),
                Setting(
                    "severity",
                    TABLE,
                    {"critical": "critical", "warning": "warning", "info": "info"},
                    "Alertmanager `severity` → level; unknown → `warning`",
                    choices=LEVELS,
                    default_doc="identity for the three levels",
                ),
            ),
            forbidden={"token": TOKEN_IN_FILE},
        ),
        Section(
            "storage",
            (
                Setting(
                    "keep",
                    DURATION,
                    30 * 86400.0,
                    "sent and dead messages, routed alerts and other history older than this "
                    "are deleted (pending messages never)",
                    default_doc='`"30d"`',
                ),
            ),
        ),
    )
}

# [[users]] is an array of tables, checked by lcbot.users.parse_users; described here.
USER_KEYS = (
    Setting("name", str, None, "unique user name", default_doc="—"),
    Setting(
        "pri",
        str,
        None,
        "privilege; a command runs when the user's privilege is at least the command's",
        choices=PRIVILEGES,
        default_doc="—",
    ),
    Setting("wxid", str, None, "WeChat contact id; unique"),
)
TABLE_KEYS = {"routes": "<level>", "severity": "<label>"}


def markdown_table() -> str:
    """The README's configuration table, generated from the schema."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]

    def row(name: str, s: Setting) -> None:
        rows.append(f"| `{name}` | {s.describe()} | {s.describe_default()} | {s.doc} |")

    for section in SCHEMA.values():
        for s in section.settings:
            suffix = f".{TABLE_KEYS[s.key]}" if s.kind == TABLE else ""
            row(f"{section.name}.{s.key}{suffix}", s)
        if section.name == "bot":
            for s in USER_KEYS:
                row(f"users[].{s.key}", s)
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover - `python -m lcbot.schema` prints the table
    print(markdown_table(), end="")
