"""``lcbot wechat qr``: a real ``python -m lcbot`` reading the state file a bot writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import segno

from lcbot.login_file import QR_PNG, write_login_state
from lcbot.qr import BORDER, save_png
from tests.procs import lcbot, make_project
from tests.test_qr import decode_block

CODE = "https://login.weixin.qq.com/l/IcRYa5Xx8g=="


def project(tmp_path):
    folder = make_project(tmp_path / "p")
    data_dir = folder / ".lcbot"
    data_dir.mkdir()
    return folder, data_dir


def test_awaiting_scan_prints_the_code_link_and_image(tmp_path):
    folder, data_dir = project(tmp_path)
    write_login_state(data_dir, state="awaiting_scan", qrcode=CODE, expires=time.time() + 290)
    save_png(CODE, data_dir / QR_PNG)
    ran = lcbot(folder, "wechat", "qr")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.split("\n")
    assert lines[0] == "Scan with WeChat to log in to lcbot (expires in ~5 min)"
    block = [line for line in lines if line.startswith("\x1b[")]
    expected = [
        [bool(m) for m in row]
        for row in segno.make(CODE, micro=False).matrix_iter(scale=1, border=BORDER)
    ]
    assert decode_block("\n".join(block))[: len(expected)] == expected
    assert "or open https://wechaty.js.org/qrcode/https%3A%2F%2Flogin.weixin.qq.com" in ran.stdout
    assert f"image: {data_dir / QR_PNG}" in ran.stdout


def test_no_bot_running(tmp_path):
    folder, _ = project(tmp_path)
    ran = lcbot(folder, "wechat", "qr")
    assert ran.returncode == 1
    assert ran.stdout.strip() == f"no bot is running for {folder / 'lcbot.toml'}"
    json_ran = lcbot(folder, "wechat", "qr", "--json")
    assert (json_ran.returncode, json.loads(json_ran.stdout)) == (1, None)


def test_state_of_a_dead_bot_means_no_bot(tmp_path):
    folder, data_dir = project(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_login_state(data_dir, state="awaiting_scan", qrcode=CODE, pid=dead.pid)
    ran = lcbot(folder, "wechat", "qr")
    assert (ran.returncode, ran.stdout.strip()) == (
        1,
        f"no bot is running for {folder / 'lcbot.toml'}",
    )


def test_other_states_are_one_line_and_exit_1(tmp_path):
    folder, data_dir = project(tmp_path)
    cases = {
        "logged in as LcBot since ": dict(state="logged_in", user="LcBot"),
        "QR code scanned at ": dict(state="scanned"),
        "connecting to the puppet service since ": dict(state="connecting"),
        "the login QR code expired at ": dict(
            state="awaiting_scan", qrcode=CODE, expires=time.time() - 5
        ),
        "WeChat error since ": dict(state="error", reason="boom"),
    }
    for start, fields in cases.items():
        write_login_state(data_dir, **fields)  # this test's pid: a live "bot"
        ran = lcbot(folder, "wechat", "qr")
        assert ran.returncode == 1, (start, ran.stderr)
        assert len(ran.stdout.strip().splitlines()) == 1, ran.stdout
        assert ran.stdout.startswith(start), ran.stdout
    assert ran.stdout.strip().endswith(": boom")


def test_json_prints_the_state(tmp_path):
    folder, data_dir = project(tmp_path)
    write_login_state(data_dir, state="awaiting_scan", qrcode=CODE)
    ran = lcbot(folder, "wechat", "qr", "--json")
    assert ran.returncode == 0, ran.stderr
    state = json.loads(ran.stdout)
    assert (state["state"], state["qrcode"], state["pid"]) == ("awaiting_scan", CODE, os.getpid())


def test_bad_config_is_exit_2(tmp_path):
    folder, _ = project(tmp_path)
    (folder / "lcbot.toml").write_text("[bot\n")
    ran = lcbot(folder, "wechat", "qr")
    assert ran.returncode == 2
    assert "Traceback" not in ran.stderr and "lcbot.toml" in ran.stderr


def test_qr_does_not_import_wechaty_or_heavy_modules(tmp_path):
    folder, data_dir = project(tmp_path)
    write_login_state(data_dir, state="awaiting_scan", qrcode=CODE)
    probe = (
        "import sys; sys.argv = ['lcbot', 'wechat', 'qr']\n"
        "from lcbot.cli import main\n"
        "try: main()\n"
        "except SystemExit: pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('wechaty', 'wechaty_grpc', 'grpclib', 'pluggy', 'sqlite3', 'asyncio') "
        "or m in ('lcbot.plugins', 'lcbot.app', 'lcbot.wechat_doctor'))\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Scan with WeChat" in result.stdout
    assert "HEAVY []" in result.stdout
