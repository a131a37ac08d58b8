"""User names cannot imitate message addresses (``room:…``, ``contact:…``)."""

from __future__ import annotations

import pytest

from lcbot import config
from lcbot.errors import ConfigError
from tests.procs import lcbot, make_project


@pytest.mark.parametrize("name", ["room:4242@chatroom", "contact:wxid_x", "a:b", "full：width"])
def test_cli_refuses_a_name_with_a_colon(tmp_path, name):
    project = make_project(tmp_path / "bot")
    before = (project / "lcbot.toml").read_text()
    result = lcbot(project, "user", "add", name, "--pri", "user", "--wxid", "wxid_carol")
    assert result.returncode == 2, result.stderr
    assert "no ':' allowed" in result.stderr and "Traceback" not in result.stderr
    assert (project / "lcbot.toml").read_text() == before  # nothing changed


def test_config_refuses_a_name_with_a_colon(tmp_path):
    path = tmp_path / "lcbot.toml"
    path.write_text('[[users]]\nname = "room:4242@chatroom"\npri = "user"\nwxid = "wxid_carol"\n')
    with pytest.raises(ConfigError, match=r"users\[0\].*no ':' allowed"):
        config.load(path)
