"""The ``[wechaty]`` and ``[ilink]`` sections of lcbot's schema (``lcbot.schema``): the two
WeChat transports' settings."""

from __future__ import annotations

from lcbot.setting import DURATION, DURATION_OFF, SECONDS, VARIABLE, Section, Setting

TOKEN_IN_FILE = "never store the token in lcbot.toml; put it in the variable named by token_env"

WECHATY = Section(
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
        Setting(
            "accept_friends",
            str,
            "invited",
            "friend requests: `invited` accepts one whose greeting holds a valid "
            "pairing code (and binds that contact); `never` ignores them all",
            choices=("invited", "never"),
        ),
        Setting(
            "self_user",
            str,
            "",
            "the lcbot user who is the bot account's owner: what the owner sends to "
            "File Transfer is a command from this user, answered there",
            default_doc="none",
        ),
        Setting(
            "liveness",
            SECONDS,
            300.0,
            "with no event from the puppet for this long, probe it (ding) and "
            "reconnect if it does not answer",
            min=1,
        ),
        Setting(
            "send_timeout",
            SECONDS,
            30.0,
            "a send the puppet has not completed by then fails and is retried",
            min=1,
        ),
    ),
    forbidden={"token": TOKEN_IN_FILE},
)

ILINK = Section(
    "ilink",
    (
        Setting(
            "base_url",
            str,
            "https://ilinkai.weixin.qq.com",
            "the WeChat ClawBot (iLink) API; any other URL (a proxy, a test server) is used "
            "by every link, while with this one each link uses the host its scan returned",
        ),
        Setting(
            "cdn_base_url",
            str,
            "https://novac2c.cdn.weixin.qq.com/c2c",
            "where images and files are uploaded",
        ),
        Setting(
            "window",
            DURATION,
            86400.0,
            "how long after a user's last message WeChat accepts messages to them; "
            "later ones wait for the user to write",
            default_doc='`"24h"`',
        ),
        Setting(
            "max_replies",
            int,
            10,
            "messages WeChat accepts per message from the user; more wait",
            min=1,
        ),
        Setting(
            "nudge",
            DURATION_OFF,
            None,
            "this long after a user's last message, use one message to ask them to "
            "send anything (keeps the reply window open)",
            default_doc="`off`",
        ),
    ),
)
