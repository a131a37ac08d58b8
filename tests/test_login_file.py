"""lcbot.login_file: the login-state contract between the transport and the CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from lcbot.login_file import (
    FIELDS,
    LOGIN_FILE,
    qr_url,
    read_login_state,
    write_login_state,
)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_written_state_is_exactly_the_contract(tmp_path):
    write_login_state(tmp_path, state="awaiting_scan", qrcode="https://x/l/a b==", expires=9e9)
    path = tmp_path / LOGIN_FILE
    record = json.loads(path.read_text())
    assert list(record) == list(FIELDS)
    assert record["state"] == "awaiting_scan"
    assert record["url"] == "https://wechaty.js.org/qrcode/https%3A%2F%2Fx%2Fl%2Fa%20b%3D%3D"
    assert record["pid"] == os.getpid()
    assert isinstance(record["since"], float)
    assert record["user"] is None and record["reason"] is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_login_state(tmp_path) == record
    assert [p.name for p in tmp_path.iterdir()] == [LOGIN_FILE]


def test_qr_url_quotes_everything():
    assert qr_url("a/b?c=d&e") == "https://wechaty.js.org/qrcode/a%2Fb%3Fc%3Dd%26e"


def test_a_new_state_replaces_the_old(tmp_path):
    write_login_state(tmp_path, state="awaiting_scan", qrcode="code")
    write_login_state(tmp_path, state="logged_in", user="LcBot")
    record = read_login_state(tmp_path)
    assert record is not None
    assert (record["state"], record["user"], record["qrcode"]) == ("logged_in", "LcBot", None)


def test_state_of_a_dead_process_is_not_current(tmp_path):
    write_login_state(tmp_path, state="logged_in", user="LcBot", pid=dead_pid())
    assert (tmp_path / LOGIN_FILE).exists()
    assert read_login_state(tmp_path) is None


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"state": "logged_in"}', None],
    ids=["empty", "broken", "not-object", "missing-fields", "absent"],
)
def test_missing_or_malformed_file_is_none(tmp_path, text):
    if text is not None:
        (tmp_path / LOGIN_FILE).write_text(text)
    assert read_login_state(tmp_path) is None


def test_unknown_state_in_the_file_is_none(tmp_path):
    write_login_state(tmp_path, state="logged_in")
    path = tmp_path / LOGIN_FILE
    path.write_text(path.read_text().replace('"logged_in"', '"dancing"'))
    assert read_login_state(tmp_path) is None


def test_writer_refuses_what_the_contract_does_not_have(tmp_path):
    with pytest.raises(ValueError, match="login state must be one of"):
        write_login_state(tmp_path, state="dancing")
    with pytest.raises(TypeError, match="colour"):
        write_login_state(tmp_path, state="error", colour="red")
    assert not (tmp_path / LOGIN_FILE).exists()
