"""Parsing chat text and the command registry."""

from __future__ import annotations

import logging

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lcbot import CmdType, Command, Pri
from lcbot.commands import Registry, parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status", ("status", None)),
        ("interval:30", ("interval", "30")),
        ("interval：30", ("interval", "30")),  # full-width colon
        ("  Interval : 30  ", ("interval", "30")),
        ("interval 30", ("interval", "30")),
        ("set k v", ("set", "k v")),
        ("note: a: b", ("note", "a: b")),
        ("STATUS", ("status", None)),
        ("status:", ("status", None)),
        ("help\tinterval", ("help", "interval")),
        ("", None),
        ("   ", None),
        (":30", None),
        ("x" * 33, None),
    ],
)
def test_parse(text, expected):
    assert parse(text) == expected


@settings(max_examples=2000)
@given(st.text())
def test_parse_never_raises_and_is_normalised(text):
    result = parse(text)
    if result is None:
        return
    name, extra = result
    assert name and name == name.lower() and len(name) <= 64
    assert not any(ch.isspace() or ch in ":：" for ch in name)
    assert extra is None or (extra == extra.strip() and extra)


@given(st.from_regex(r"[a-z]{1,10}", fullmatch=True), st.text(min_size=1).map(str.strip))
def test_parse_round_trips_name_and_extra(name, extra):
    assume(not extra.startswith((":", "：")))  # "a :x" reads as "a:x", by design
    for sep in (":", "：", " "):
        parsed = parse(f"{name}{sep}{extra}")
        assert parsed is not None and parsed[0] == name
        if extra:
            assert parsed[1] is not None and parsed[1] in extra


def test_registry_decorator_add_update_remove(caplog):
    registry = Registry(rank={"first": 0, "second": 1})
    first = registry.for_plugin("first")

    @first.command("Ping", help="reply pong")
    def ping(ctx):
        return "pong"

    ping_cmd = registry.get("PING")
    assert ping_cmd.name == "ping" and ping_cmd.plugin == "first"
    assert ping_cmd.kind is CmdType.GET and ping_cmd.pri is Pri.USER

    second = registry.for_plugin("second")
    with caplog.at_level(logging.WARNING):
        assert second.add(Command("ping", lambda ctx: "other")) is False
    assert "'second'" in caplog.text and "'first'" in caplog.text
    assert registry.get("ping").handler is ping
    with pytest.raises(KeyError):  # a plugin changes only its own commands
        second.update("ping", pri=Pri.ROOT)
    assert second.remove("ping") is None

    updated = first.update("ping", pri=Pri.ADMIN)
    assert updated.pri is Pri.ADMIN and registry.get("ping").pri is Pri.ADMIN
    assert first.remove("ping") is updated
    assert registry.get("ping") is None and len(registry) == 0


def test_earlier_loaded_plugin_keeps_a_name_whatever_the_call_order():
    registry = Registry(rank={"builtin": 0, "late": 1})
    registry.for_plugin("late").add(Command("help", lambda ctx: "mine"))
    registry.for_plugin("builtin").add(Command("help", lambda ctx: "builtin"))
    assert registry.get("help").plugin == "builtin"


def test_command_validation():
    with pytest.raises(ValueError):
        Command("two words", lambda c: None)
    with pytest.raises(ValueError):
        Command("x", lambda c: None, concurrency="parallel")
    with pytest.raises(TypeError):
        Command("x", "not callable")
    cmd = Command("interval", lambda c: None, kind=CmdType.SET, help="set it")
    assert cmd.usage_text == "interval:VALUE — set it"


def test_docstring_is_default_help():
    registry = Registry().for_plugin("p")

    @registry.command("doc")
    def doc(ctx):
        """First line is the help.

        More text."""

    assert registry.get("doc").help == "First line is the help."
