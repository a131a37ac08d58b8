"""The grouping keys of ``[alerts]`` and the ``[oncall]`` section of the schema."""

from __future__ import annotations

from lcbot.setting import SECONDS, Section, Setting

GROUPING = (
    Setting(
        "group_by",
        list,
        (),
        'labels whose values make an alert group (`["..."]`: all labels); empty: no grouping',
        type_doc="list of label names",
    ),
    Setting(
        "group_wait",
        SECONDS,
        10.0,
        "how long a new group waits for more alerts before its first message",
        min=0,
    ),
    Setting(
        "group_interval",
        SECONDS,
        300.0,
        "the least time between two messages of one group (later additions, resolved ones)",
        min=0,
    ),
)

ONCALL = Section(
    "oncall",
    (
        Setting(
            "rota",
            list,
            (),
            "users on call in turn (one per handover); critical alerts reach the one on call",
            type_doc="list of user names",
        ),
        Setting(
            "handover",
            str,
            "mon 09:00",
            'when the next person takes over: weekly `"mon 09:00"`, daily `"09:00"`',
        ),
        Setting(
            "timezone",
            str,
            "",
            "the rota's time zone (`Asia/Shanghai`); empty: the machine's",
            default_doc="local time",
        ),
    ),
)
