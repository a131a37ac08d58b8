"""lcbot's configuration schema: every section and key of lcbot.toml, with type, default and
meaning, declared once (``Setting``, ``Section`` of ``lcbot.setting``).

It drives loading (``config.validate`` fills defaults and names the bad key), ``lcbot
config check``, each component's settings, and the README's configuration table
(``python -m lcbot.schema`` prints it; a docs test compares the two).
"""

from __future__ import annotations

from lcbot.schema_oncall import GROUPING, ONCALL
from lcbot.schema_wechat import ILINK, TOKEN_IN_FILE, WECHATY
from lcbot.setting import (
    DURATION,
    DURATION_OFF,
    INHIBIT_RULES,
    LISTEN,
    PATH,
    SECONDS,
    TABLE,
    VARIABLE,
    Section,
    Setting,
)

LEVELS = ("info", "warning", "critical")
PRIVILEGES = ("root", "admin", "user")
TRANSPORTS = ("auto", "console", "wechaty", "ilink")

# --- lcbot's own sections ------------------------------------------------------------------

WECHAT_PACE = "WeChat {}, console 0"
JOB_TOKEN_IN_FILE = (
    "never store the token in lcbot.toml; put it in the variable named by job_token_env"
)

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
                Setting(
                    "stop_timeout",
                    SECONDS,
                    10.0,
                    "the longest a stop waits for running commands and to send what is pending",
                    min=0,
                ),
                Setting(
                    "commands_per_minute",
                    int,
                    30,
                    "commands a user may send per minute; past it one `slow down` reply, then "
                    "silence until the minute has room (0: no limit)",
                    min=0,
                ),
                Setting(
                    "rate_limit_root",
                    bool,
                    False,
                    "whether root users are rate limited too (by default they are exempt)",
                ),
                Setting(
                    "approval_timeout",
                    DURATION,
                    600.0,
                    "how long a command that needs approval waits for another admin's `approve ID`",
                    default_doc='`"10m"`',
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
                    keys_name="level",
                    default_doc="critical `user`, warning `admin`, info `root`",
                ),
                *GROUPING,
                Setting(
                    "inhibit",
                    INHIBIT_RULES,
                    (),
                    "`[[alerts.inhibit]]` rules: `source_matchers`, `target_matchers` (lists of "
                    "matchers such as `'alertname=\"HostDown\"'`) and `equal` (label names); "
                    "while a source fires, matching targets are not sent",
                    default_doc="none",
                ),
                Setting(
                    "renotify",
                    DURATION_OFF,
                    900.0,
                    "an unacknowledged critical alert is sent again this often (`off`: never)",
                    default_doc="`15m`",
                ),
                Setting(
                    "escalate_after",
                    DURATION,
                    1800.0,
                    "an unacknowledged critical alert takes the next escalation step this often",
                    default_doc="`30m`",
                ),
                Setting(
                    "escalation",
                    list,
                    (),
                    "escalation steps: a privilege (everyone with at least it) or a user name",
                    type_doc="list of privileges or user names",
                ),
            ),
        ),
        ONCALL,
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
                Setting(
                    "max_parts",
                    int,
                    5,
                    "parts a long message is sent in at most; the rest is cut, with a marker",
                    min=1,
                ),
                Setting("max_attempts", int, 20, "failed sends before a message is dead", min=1),
            ),
        ),
        WECHATY,
        ILINK,
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
                    "job_token_env",
                    VARIABLE,
                    "LCBOT_JOB_TOKEN",
                    "remote jobs' token variable (`/jobs/exchange`); unset: remote jobs off",
                    default_doc="`LCBOT_JOB_TOKEN`",
                ),
                Setting(
                    "severity",
                    TABLE,
                    {"critical": "critical", "warning": "warning", "info": "info"},
                    "Alertmanager `severity` → level; unknown → `warning`",
                    choices=LEVELS,
                    keys_name="label",
                    default_doc="identity for the three levels",
                ),
            ),
            forbidden={"token": TOKEN_IN_FILE, "job_token": JOB_TOKEN_IN_FILE},
        ),
        Section(
            "storage",
            (
                Setting(
                    "keep",
                    DURATION,
                    30 * 86400.0,
                    "sent and dead messages, routed alerts, the audit log and other history "
                    "older than this are deleted (pending messages never)",
                    default_doc='`"30d"`',
                ),
            ),
        ),
        Section(
            "files",
            (
                Setting(
                    "max_size",
                    int,
                    10 * 2**20,
                    "largest file `ctx.reply_file` / `bot.send_file` accept; a bigger one "
                    "raises `FileTooLarge`",
                    min=1,
                    type_doc="bytes (whole number)",
                    default_doc="10485760 (10 MiB)",
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
    Setting("ilink", str, None, "iLink (ClawBot) user id, written by `lcbot user link`; unique"),
)

# [[rooms]] is an array of tables (group chats that receive alerts), checked by
# lcbot.rooms.parse_rooms; described here.
ROOM_KEYS = (
    Setting("id", str, None, "group chat (WeChat room) id; unique", default_doc="—"),
    Setting("topic", str, None, "the group's name, for humans (the id is what counts)"),
    Setting(
        "alerts",
        str,
        None,
        "least alert level the group receives (that level and above)",
        choices=LEVELS,
        default_doc="—",
    ),
)


def markdown_table() -> str:
    """The README's configuration table, generated from the schema."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]

    def row(name: str, s: Setting) -> None:
        rows.append(f"| `{name}` | {s.describe()} | {s.describe_default()} | {s.doc} |")

    for section in SCHEMA.values():
        for s in section.settings:
            suffix = f".<{s.keys_name}>" if s.kind == TABLE else ""
            row(f"{section.name}.{s.key}{suffix}", s)
        if section.name == "bot":
            for s in USER_KEYS:
                row(f"users[].{s.key}", s)
            for s in ROOM_KEYS:
                row(f"rooms[].{s.key}", s)
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover - `python -m lcbot.schema` prints the table
    print(markdown_table(), end="")
