"""``lcbot wechat doctor``: a real ``python -m lcbot`` against the real Node puppet-service
test server (tests/wechaty_server), and against nothing at all."""

from __future__ import annotations

import pytest

from lcbot.login_file import write_login_state
from tests.procs import lcbot, make_project
from tests.wechaty_mock import WechatyMockServer, free_port

pytestmark = pytest.mark.wechat

TOKEN = "insecure_doctor-test"
NO_ENV = {"WECHATY_PUPPET_SERVICE_ENDPOINT": "", "WECHATY_PUPPET_SERVICE_TOKEN": ""}


@pytest.fixture(scope="module")
def server():
    with WechatyMockServer(token=TOKEN) as running:
        yield running


def doctor(tmp_path, extra: str = "", **env: str):
    folder = make_project(tmp_path / "p", extra=extra)
    return lcbot(folder, "wechat", "doctor", "--timeout", "10", **{**NO_ENV, **env})


def fails(ran, what: str) -> str:
    """The FAIL line about ``what`` and its fix."""
    lines = ran.stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("FAIL") and what in line:
            assert lines[i + 1].startswith("      fix: "), ran.stdout
            return lines[i + 1]
    raise AssertionError(f"no FAIL line about {what!r}:\n{ran.stdout}")


def test_ok_against_the_real_server(server, tmp_path):
    server.login("wxid_doctorbot", "DoctorBot")
    assert server.health()["loggedIn"], server.health()
    try:
        ran = doctor(tmp_path, **server.env())
    finally:
        server.logout()
    assert ran.returncode == 0, ran.stdout + ran.stderr
    oks = [line for line in ran.stdout.splitlines() if line.startswith("ok")]
    assert len(oks) == 5, ran.stdout
    assert "FAIL" not in ran.stdout
    assert f"ok    TCP connect to {server.endpoint}" in ran.stdout
    assert "ok    token accepted (puppet version " in ran.stdout
    assert "logged in as wxid_doctorbot" in ran.stdout
    assert TOKEN not in ran.stdout + ran.stderr  # the token is never printed
    # the gateway command for this setup, with the variable, not the token's value
    assert (
        "WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_SERVER=true npx -y wechaty@1.20.2 gateway "
        f"--puppet wechaty-puppet-wechat4u --port {server.port} "
        '--token "$WECHATY_PUPPET_SERVICE_TOKEN"'
    ) in ran.stdout


def test_endpoint_from_the_config_and_token_from_token_env(server, tmp_path):
    extra = f'[wechaty]\nendpoint = "{server.endpoint}"\ntoken_env = "MY_WECHAT_TOKEN"\n'
    ran = doctor(tmp_path, extra, MY_WECHAT_TOKEN=TOKEN)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "ok    token in $MY_WECHAT_TOKEN" in ran.stdout
    assert "not logged in" in ran.stdout


def test_wrong_token(server, tmp_path):
    ran = doctor(tmp_path, **{**server.env(), "WECHATY_PUPPET_SERVICE_TOKEN": "insecure_wrong"})
    assert ran.returncode == 1
    assert "--token the gateway was started with" in fails(ran, "token refused")
    assert "insecure_wrong" not in ran.stdout  # the server's message quotes it: not shown
    assert "ok    gRPC handshake (plain HTTP/2)" in ran.stdout


def test_a_running_bots_state_file_is_reported(server, tmp_path):
    folder = make_project(tmp_path / "p")
    (folder / ".lcbot").mkdir()
    write_login_state(folder / ".lcbot", state="awaiting_scan", qrcode="code")  # our pid
    ran = lcbot(folder, "wechat", "doctor", **server.env())
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "login (lcbot pid" in ran.stdout and "`lcbot wechat qr` shows the code" in ran.stdout


def test_nothing_listening(tmp_path):
    port = free_port()
    ran = doctor(
        tmp_path,
        WECHATY_PUPPET_SERVICE_ENDPOINT=f"127.0.0.1:{port}",
        WECHATY_PUPPET_SERVICE_TOKEN=TOKEN,
    )
    assert ran.returncode == 1
    assert "WECHATY_APIHOST" in fails(ran, f"connect to 127.0.0.1:{port}")
    assert f"--port {port}" in ran.stdout


def test_no_endpoint_configured(tmp_path):
    ran = doctor(tmp_path)
    assert ran.returncode == 1
    assert "WECHATY_PUPPET_SERVICE_ENDPOINT" in fails(ran, "endpoint: not set")
    assert "Traceback" not in ran.stderr


def test_endpoint_that_is_not_host_port(tmp_path):
    ran = doctor(
        tmp_path, WECHATY_PUPPET_SERVICE_ENDPOINT="localhost", WECHATY_PUPPET_SERVICE_TOKEN="t"
    )
    assert ran.returncode == 1
    fails(ran, "'localhost': not host:port")


def test_token_variable_not_set(server, tmp_path):
    ran = doctor(tmp_path, WECHATY_PUPPET_SERVICE_ENDPOINT=server.endpoint)
    assert ran.returncode == 1
    assert "export WECHATY_PUPPET_SERVICE_TOKEN=" in fails(ran, "is not set")
    assert "insecure_$(python3" in ran.stdout  # how to make a token with the prefix


def test_bad_config_is_exit_2(tmp_path):
    extra = "[wechaty]\nendpoint = 5\n"
    ran = doctor(tmp_path, extra)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr and "wechaty.endpoint" in ran.stderr


def test_a_tls_server_is_named_with_the_fix(tmp_path):
    with WechatyMockServer(token=TOKEN, tls=True) as tls_server:
        ran = doctor(tmp_path, **tls_server.env())
    assert ran.returncode == 1
    fix = fails(ran, "the service speaks TLS")
    assert fix == (
        "      fix: start the gateway with "
        "WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_SERVER=true in its environment"
    )
    assert "ok    TCP connect" in ran.stdout
