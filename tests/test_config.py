"""lcbot.toml: locating, parsing errors, validation, and lossless saving."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lcbot import config
from lcbot.errors import ConfigError
from lcbot.users import Pri

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def test_locate_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LCBOT_CONFIG", raising=False)
    assert config.locate() == tmp_path / "lcbot.toml"
    monkeypatch.setenv("LCBOT_CONFIG", str(tmp_path / "env.toml"))
    assert config.locate() == tmp_path / "env.toml"
    assert config.locate(tmp_path / "x.toml") == tmp_path / "x.toml"


def test_load_defaults_and_relative_paths(cfg_path):
    cfg = config.load(cfg_path)
    assert cfg.bot.name == "testbot"
    assert cfg.bot.transport == "auto"
    assert cfg.bot.data_dir == cfg_path.parent / ".lcbot"
    assert cfg.bot.workers == 8 and cfg.bot.slow_notice == 10.0
    assert cfg.plugins.dirs == (cfg_path.parent / "plugins",)
    assert [(u.name, u.pri) for u in cfg.users] == [("alice", Pri.ROOT), ("bob", Pri.ADMIN)]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[bot]\nname = \n", ":2:8:"),
        ("[[users]]\nname = 'a'\npri = 'root'\n[bot\n", ":4:5:"),
        ("a = [1,\n", ":2:1:"),
    ],
)
def test_invalid_toml_names_line_and_column(tmp_path, text, where):
    path = tmp_path / "lcbot.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert f"{path}{where} invalid TOML" in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[[users]]\nname = "a"\npri = 5\n', "users[0] (a): pri must be one of root, admin, user"),
        ('[[users]]\nname = "a"\npri = "king"\n', "unknown privilege 'king'"),
        ('[[users]]\nname = ""\npri = "root"\n', "invalid user name ''"),
        ('[[users]]\nname = "a b"\npri = "root"\n', "invalid user name 'a b'"),
        ('[[users]]\nname = "a"\npri = "root"\n[[users]]\nname = "A"\npri = "user"\n', "duplicate"),
        ("users = 3\n", "'users' must be an array"),
        ("bot = 3\n", "[bot] must be a table"),
        ('[bot]\nworkers = "8"\n', "bot.workers: expected int"),
        ("[bot]\nworkers = true\n", "bot.workers: expected int"),
        ('[bot]\ntransport = "irc"\n', "bot.transport: expected one of auto, console, wechaty"),
        ('[plugins]\ndirs = "plugins"\n', "plugins.dirs: expected a list of texts"),
    ],
)
def test_wrong_types_are_reported(tmp_path, text, fragment):
    path = tmp_path / "lcbot.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert fragment in str(info.value)


def test_missing_file_hints_init(tmp_path):
    with pytest.raises(ConfigError, match="lcbot init"):
        config.load(tmp_path / "nope.toml")


def test_edit_writes_atomically_and_keeps_unknown_keys(cfg_path):
    cfg_path.write_text(cfg_path.read_text() + "\n[custom]\nx = 1\nwhen = 2024-01-02\n")
    with config.edit(cfg_path) as raw:
        raw["users"][1]["pri"] = "user"
    data = tomllib.loads(cfg_path.read_text())
    assert data["custom"] == {"x": 1, "when": dt.date(2024, 1, 2)}
    assert data["users"][1]["pri"] == "user"
    assert cfg_path.read_text().startswith(config.HEADER)
    leftovers = [p.name for p in cfg_path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_edit_that_fails_validation_writes_nothing(cfg_path):
    before = cfg_path.read_bytes()
    with pytest.raises(ConfigError), config.edit(cfg_path) as raw:
        raw["users"][0]["pri"] = 7
    assert cfg_path.read_bytes() == before


def test_create_refuses_existing(cfg_path):
    before = cfg_path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        config.create(cfg_path, {"users": []})
    assert cfg_path.read_bytes() == before


# --- lossless rendering ----------------------------------------------------------------

keys = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8
)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([dt.timezone.utc])).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=10,
)
documents = st.dictionaries(
    keys,
    st.one_of(values, st.lists(st.dictionaries(keys, values, max_size=3), max_size=3)),
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(documents)
@example({"0": [], "\x7f": [{}]})  # a table-array key with DEL must be escaped
def test_render_round_trips_any_document(doc):
    text = config.render(doc)
    assert tomllib.loads(text) == doc


def test_render_writes_users_as_table_array():
    text = config.render({"users": [{"name": "a", "pri": "root"}], "bot": {"name": "x"}})
    assert '[[users]]\nname = "a"\npri = "root"\n' in text
    assert "[bot]" in text


def test_write_atomic_keeps_mode(tmp_path):
    path = tmp_path / "lcbot.toml"
    path.write_text("x = 1\n")
    path.chmod(0o600)
    config.write_atomic(path, "x = 2\n")
    assert path.read_text() == "x = 2\n"
    assert path.stat().st_mode & 0o777 == 0o600


def test_section_access(cfg_path: Path):
    cfg_path.write_text(cfg_path.read_text() + "\n[sysmon]\ninterval = 5\n")
    cfg = config.load(cfg_path)
    assert cfg.section("sysmon") == {"interval": 5}
    assert cfg.section("absent") == {}
