"""The configuration schema: one style of error for every key, defaults filled in, and
unknown keys reported (by ``config check``) and logged (by ``run``), never fatal."""

from __future__ import annotations

import pytest

from lcbot import config
from lcbot.errors import ConfigError
from lcbot.schema import SCHEMA
from lcbot.setting import Section, Setting
from tests.procs import lcbot, make_project


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[bot]\nworkers = 0\n", "bot.workers: expected integer ≥ 1, got 0"),
        ("[bot]\nslow_notice = -1\n", "bot.slow_notice: expected seconds ≥ 0, got -1"),
        ("[alerts]\nrepeat_interval = 'x'\n", "alerts.repeat_interval: expected seconds"),
        ("[ratelimit]\nper_second = 0.5\n", "ratelimit.per_second: expected int, got 0.5"),
        ("[ratelimit]\nmax_chars = 10\n", "ratelimit.max_chars: expected integer ≥ 20, got 10"),
        ("[wechaty]\nport = 70000\n", "wechaty.port: expected 0-65535, got 70000"),
        ("[wechaty]\nrooms = 'all'\n", "wechaty.rooms: expected one of off, mention, got 'all'"),
        ("[wechaty]\ntoken = 's3cret'\n", "[wechaty] token: never store the token"),
        ("[ingress]\nlisten = 'nowhere'\n", "ingress.listen: expected HOST:PORT, got 'nowhere'"),
        ("[ingress]\nenabled = 'yes'\n", "ingress.enabled: expected true or false"),
        ("[ingress.severity]\npage = 'loud'\n", "ingress.severity.page: expected one of info"),
        ("[storage]\nkeep = '0d'\n", "storage.keep: expected a duration"),
        ("[security]\nidentity = 'face'\n", "security.identity: expected one of id, name"),
        ("ratelimit = 3\n", "[ratelimit] must be a table"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, toml, message):
    path = tmp_path / "lcbot.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_defaults_fill_every_setting(tmp_path):
    path = tmp_path / "lcbot.toml"
    path.write_text("")
    settings = config.load(path).settings
    for name, section in SCHEMA.items():
        assert set(settings[name]) == {s.key for s in section.settings}, name
    assert settings["ingress"]["listen"] == ("127.0.0.1", 8789)
    assert settings["storage"]["keep"] == 30 * 86400
    assert settings["alerts"]["routes"] == {"critical": "user", "warning": "admin", "info": "root"}


def test_unknown_keys_are_listed_not_fatal(tmp_path):
    path = tmp_path / "lcbot.toml"
    path.write_text("[bot]\nnmae = 'x'\n\n[ratelimit]\nper_hour = 3\n\n[mine]\nanything = 1\n")
    cfg = config.load(path)
    assert cfg.unknown_keys() == ["bot.nmae", "ratelimit.per_hour"]  # [mine] is not lcbot's
    section = Section("weather", (Setting("city", str, "Paris", "the city"),))
    assert section.unknown_keys({"city": "x", "colour": 1}) == ["colour"]


def test_config_check_reports_and_run_logs_unknown_keys(tmp_path):
    project = make_project(tmp_path / "bot", extra="[ratelimit]\nper_hour = 3\n")
    toml = project / "lcbot.toml"
    toml.write_text(toml.read_text().replace("[bot]\n", '[bot]\nnmae = "typo"\n', 1))
    check = lcbot(project, "config", "check")
    assert check.returncode == 0, check.stderr
    assert "unknown key bot.nmae (ignored)" in check.stdout
    assert "unknown key ratelimit.per_hour (ignored)" in check.stdout
    ran = lcbot(project, "run", "--transport", "console", input="whoami\n")
    assert ran.returncode == 0, ran.stderr
    assert "unknown key bot.nmae (ignored)" in ran.stderr
    assert "unknown key ratelimit.per_hour (ignored)" in ran.stderr
    assert ran.stdout.strip() == "me (root)"
