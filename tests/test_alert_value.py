"""Alerts as one value: the CLI, HTTP and ``bot.alert`` check an alert with the same rules
(``make_alert``) — and refuse the same bad alerts, naming the field, storing nothing."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from lcbot.alerts import MAX_TEXT, MAX_TITLE, InvalidAlert, is_blank, make_alert
from lcbot.testing import running_bot
from tests.procs import db_path, lcbot, make_project

# (name, fields, the field named) — each is refused by every producer
BAD = [
    ("empty text", {"text": ""}, "text"),
    ("blank text", {"text": "  \n\t "}, "text"),
    ("unknown level", {"text": "x", "level": "fatal"}, "level"),
    ("long text", {"text": "x" * (MAX_TEXT + 1)}, "text"),
    ("long title", {"text": "x", "title": "t" * (MAX_TITLE + 1)}, "title"),
    ("long key", {"text": "x", "key": "k" * (MAX_TITLE + 1)}, "key"),
    ("undecodable text", {"text": "disk \udce9 full"}, "text"),
]
IDS = [name for name, _, _ in BAD]


@pytest.mark.parametrize(("name", "fields", "field"), BAD, ids=IDS)
def test_make_alert_names_the_field(name, fields, field):
    with pytest.raises(InvalidAlert) as caught:
        make_alert(**fields)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)  # plugins may catch ValueError


@pytest.mark.parametrize(
    ("text", "blank"),
    [
        ("", True),
        (" \t\n", True),
        ("\u200b\ufeff\u3164\u2800", True),  # zero-width, BOM, Hangul filler, blank Braille
        ("\u3164x", False),
        ("!", False),
        ("~\u200b", False),
        ("磁盘满了", False),
        ("\u200bdisk", False),
    ],
)
def test_is_blank_sees_only_invisible_text(text, blank):
    assert is_blank(text) is blank


def test_the_limits_themselves_are_accepted():
    alert = make_alert("x" * MAX_TEXT, "critical", "t" * MAX_TITLE, "k" * MAX_TITLE)
    assert (len(alert.text), len(alert.title), len(alert.key)) == (MAX_TEXT, MAX_TITLE, MAX_TITLE)
    assert make_alert("  padded  ").text == "padded"


def cli_args(fields: dict) -> list[str]:
    args = ["alert", fields["text"] if len(fields["text"]) < 1000 else "-"]
    for option in ("level", "title", "key"):
        if option in fields:
            args += [f"--{option}", fields[option]]
    return args


@pytest.mark.parametrize(("name", "fields", "field"), BAD, ids=IDS)
def test_cli_refuses_it_with_exit_2_and_stores_nothing(tmp_path, name, fields, field):
    project = make_project(tmp_path / "bot")
    long_text = fields["text"] if len(fields["text"]) >= 1000 else ""
    result = lcbot(project, *cli_args(fields), input=long_text)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and field in result.stderr
    assert "Traceback" not in result.stderr
    assert not db_path(project).exists()  # checked before the database is even opened


def test_http_and_bot_alert_refuse_the_same(tmp_path):
    config = {"ingress": {"enabled": True, "listen": "127.0.0.1:0"}}

    async def go():
        async with running_bot(tmp_path, config=config) as bot:
            url = f"http://127.0.0.1:{bot.app.ingress.port}/alert"
            plugin_bot = bot.app.bot("checker")
            async with aiohttp.ClientSession() as http:
                for name, fields, field in BAD:
                    body = json.dumps(fields).encode()  # lone surrogates as \\udce9 escapes
                    async with http.post(url, data=body) as reply:
                        assert reply.status == 400, (name, reply.status)
                        assert f"'{field}'" in (await reply.json())["error"], name
                    with pytest.raises(ValueError) as caught:
                        plugin_bot.alert(**fields)
                    assert caught.value.field == field, name
            await bot.settle()
            assert bot.sent == []
            assert bot.app.db.conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)

    asyncio.run(go())
