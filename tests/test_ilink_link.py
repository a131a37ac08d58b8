"""``lcbot user link / unlink / add --link`` as real processes against the local iLink test
server: every QR status, where the link and the token go (and where they never go)."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from lcbot.ilink import linking
from lcbot.ilink.api import ILinkAPI
from lcbot.ilink.store import LinkStore
from tests.ilink_server import ILinkServer
from tests.procs import lcbot, lcbot_json, make_project, one_line, spawn

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

WAIT = 20.0


@pytest.fixture
def srv():
    with ILinkServer(qr_lifetime=120.0) as server:
        yield server
        assert server.errors == []


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "p", {"me": "root", "alice": "user"})


def start_link(project: Path, srv: ILinkServer, *args: str, user: str = "alice"):
    cmd = ["user", "link", user, "--base-url", srv.base_url, *args]
    return spawn(
        project,
        *cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc, stdin: str = "") -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(stdin, timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"user link still running: {out[-1500:]}\n{err[-1500:]}") from None
    return proc.returncode, out, err


def users_of(project: Path) -> dict[str, dict]:
    raw = tomllib.loads((project / "lcbot.toml").read_text())
    return {u["name"]: u for u in raw["users"]}


def check_linked(project: Path, srv: ILinkServer, confirmed: dict, out: str, err: str) -> None:
    token = confirmed["bot_token"]
    user_id = srv.user_id(confirmed["wechat_user"])
    assert users_of(project)["alice"]["ilink"] == user_id
    toml = (project / "lcbot.toml").read_text()
    assert token not in toml and "bot_token" not in toml
    assert token not in out and token not in err
    folder = project / ".lcbot" / "ilink"
    path = folder / "alice.link.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved["user"] == "alice" and saved["bot_token"] == token
    assert saved["bot_id"] == confirmed["ilink_bot_id"] and saved["ilink_user_id"] == user_id
    assert saved["base_url"] == srv.base_url
    assert (
        "alice is linked: ask alice to send any message to the bot — WeChat lets the bot "
        "write only after that"
    ) in out
    assert list((project / ".lcbot").glob("*.png")) == []  # the QR picture is gone


def test_link_confirm_then_list_and_unlink(project, srv):
    proc = start_link(project, srv)
    code = srv.wait_qrcode(WAIT)
    srv.scan(code, "wx-alice")
    confirmed = srv.confirm(code)
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert "Scan with WeChat to link alice to lcbot (QR code 1 of 3):" in out
    assert f"qrcode={code}" in out  # the link under the terminal QR code
    assert "\x1b[30;107m" in out  # the terminal QR code itself
    assert "or open " in out and "ilink-qr-alice.png" in out
    check_linked(project, srv, confirmed, out, err)
    assert srv.qrcodes() == [code]
    (qr,) = [r for r in srv.requests if r["path"].endswith("get_bot_qrcode")]
    assert qr["body"]["base_info"]["bot_agent"].startswith("lcbot/")

    listed = {u["name"]: u for u in lcbot_json(project, "user", "list")}
    assert listed["alice"]["linked"] is True
    assert listed["alice"]["ilink"] == srv.user_id("wx-alice")
    assert listed["me"]["linked"] is False and listed["me"]["ilink"] is None
    table = lcbot(project, "user", "list", COLUMNS="200")
    assert f"linked ({srv.user_id('wx-alice')})" in table.stdout

    store = project / ".lcbot" / "ilink"
    (store / "alice.state.json").write_text("{}")  # as the transport would have written
    gone = lcbot(project, "user", "unlink", "alice")
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.strip() == "alice is unlinked"
    assert list(store.iterdir()) == []
    assert "ilink" not in users_of(project)["alice"]
    again = lcbot(project, "user", "unlink", "Alice")
    assert again.returncode == 0 and again.stdout.strip() == "alice was not linked"


def test_expired_codes_are_refreshed_up_to_three(project, srv):
    proc = start_link(project, srv)
    first = srv.wait_qrcode(WAIT)
    srv.expire(first)
    second = srv.wait_qrcode(WAIT)
    assert second != first
    srv.scan(second, "wx-alice")
    confirmed = srv.confirm(second)
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert "the QR code expired; here is a new QR code" in out
    assert "(QR code 2 of 3):" in out and f"qrcode={second}" in out
    check_linked(project, srv, confirmed, out, err)


def test_three_expired_codes_end_the_link_and_change_nothing(project, srv):
    before = (project / "lcbot.toml").read_bytes()
    proc = start_link(project, srv)
    for _ in range(3):
        srv.expire(srv.wait_qrcode(WAIT))
    rc, _out, err = finish(proc)
    assert rc == 1
    assert one_line(err) == ("error: the QR code expired, 3 QR codes in all; try again later")
    assert len(srv.qrcodes()) == 3
    assert (project / "lcbot.toml").read_bytes() == before
    assert not (project / ".lcbot" / "ilink" / "alice.link.json").exists()
    assert list((project / ".lcbot").glob("*.png")) == []


def test_verify_code_from_stdin_wrong_then_right(project, srv):
    proc = start_link(project, srv)
    code = srv.wait_qrcode(WAIT)
    srv.require_verify_code(code, "4321")
    srv.scan(code, "wx-alice")
    confirmed = srv.confirm(code)
    rc, out, err = finish(proc, "1111\n4321\n")
    assert rc == 0, err
    assert "enter the number WeChat shows on the phone: " in out
    assert "that number did not match; enter the number WeChat shows on the phone: " in out
    asked = [r["query"].get("verify_code") for r in srv.requests if "qrcode_status" in r["path"]]
    assert "1111" in asked and "4321" in asked
    check_linked(project, srv, confirmed, out, err)


def test_blocked_verify_code_gets_a_new_qr_code(project, srv):
    proc = start_link(project, srv)
    code = srv.wait_qrcode(WAIT)
    srv.require_verify_code(code, "4321")
    srv.scan(code, "wx-alice")
    proc.stdin.write("1\n2\n3\n")
    proc.stdin.flush()
    second = srv.wait_qrcode(WAIT)
    srv.scan(second, "wx-alice")
    confirmed = srv.confirm(second)
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert "too many wrong numbers for this QR code; here is a new QR code" in out
    check_linked(project, srv, confirmed, out, err)


def test_no_verify_code_at_end_of_input(project, srv):
    proc = start_link(project, srv)
    code = srv.wait_qrcode(WAIT)
    srv.require_verify_code(code, "4321")
    srv.scan(code, "wx-alice")
    rc, _out, err = finish(proc, "")
    assert rc == 1
    assert one_line(err) == "error: no number entered; the link was not made"
    assert "ilink" not in users_of(project)["alice"]


def test_redirect_switches_the_polling_host(project, srv):
    proc = start_link(project, srv)
    code = srv.wait_qrcode(WAIT)
    srv.redirect(code)
    srv.scan(code, "wx-alice")
    confirmed = srv.confirm(code)
    rc, out, err = finish(proc)
    assert rc == 0, err
    host = srv.redirect_url.removeprefix("http://")
    assert f"WeChat moved the login to {host}; following it" in out
    ports = {r["port"] for r in srv.requests if "qrcode_status" in r["path"]}
    assert ports == {int(srv.base_url.rsplit(":", 1)[1]), int(host.rsplit(":", 1)[1])}
    check_linked(project, srv, confirmed, out, err)


def test_add_with_link(project, srv):
    proc = spawn(
        project,
        *("user", "add", "carol", "--pri", "user", "--link", "--base-url", srv.base_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    code = srv.wait_qrcode(WAIT)
    srv.scan(code, "wx-carol")
    confirmed = srv.confirm(code)
    rc, out, err = finish(proc)
    assert rc == 0, err
    assert out.startswith("added carol (user)\n")
    assert "pairing code" not in out
    assert "carol is linked" in out
    carol = users_of(project)["carol"]
    assert carol["ilink"] == srv.user_id("wx-carol")
    link = LinkStore(project / ".lcbot").load("carol")
    assert link is not None and link.bot_token == confirmed["bot_token"]
    assert confirmed["bot_token"] not in repr(link)


def test_one_wechat_account_cannot_link_two_users(project, srv):
    proc = start_link(project, srv)
    code = srv.wait_qrcode(WAIT)
    srv.scan(code, "wx-alice")
    srv.confirm(code)
    assert finish(proc)[0] == 0
    proc = start_link(project, srv, user="me")
    code = srv.wait_qrcode(WAIT)
    srv.scan(code, "wx-alice")
    srv.confirm(code)
    rc, _out, err = finish(proc)
    assert rc == 2
    assert one_line(err) == "error: this WeChat account is already linked to 'alice'"
    assert "ilink" not in users_of(project)["me"]
    assert not (project / ".lcbot" / "ilink" / "me.link.json").exists()


def test_removing_a_user_forgets_the_link(project, srv):
    proc = start_link(project, srv)
    code = srv.wait_qrcode(WAIT)
    srv.scan(code, "wx-alice")
    srv.confirm(code)
    assert finish(proc)[0] == 0
    assert lcbot(project, "user", "remove", "alice").returncode == 0
    assert list((project / ".lcbot" / "ilink").iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["user", "link", "nobody"], "error: no user named 'nobody' (see: lcbot user list)"),
        (["user", "unlink", "nobody"], "error: no user named 'nobody' (see: lcbot user list)"),
        (
            ["user", "link", "alice", "--base-url", "ftp://x"],
            "error: --base-url must be an http:// or https:// URL, got 'ftp://x'",
        ),
        (
            ["user", "add", "dora", "--pri", "user", "--link", "--base-url", "nope"],
            "error: --base-url must be an http:// or https:// URL, got 'nope'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(project, args, message):
    before = (project / "lcbot.toml").read_bytes()
    result = lcbot(project, *args)
    assert result.returncode == 2
    assert one_line(result.stderr) == message
    assert (project / "lcbot.toml").read_bytes() == before


def test_unreachable_service_fails_in_one_line(project):
    result = lcbot(project, "user", "link", "alice", "--base-url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert one_line(result.stderr).startswith(
        "error: could not get a QR code: get_bot_qrcode: errmsg=connection failed"
    )


def test_base_url_from_the_config(tmp_path, srv):
    project = make_project(
        tmp_path / "p", {"me": "root", "alice": "user"}, f'[ilink]\nbase_url = "{srv.base_url}"\n'
    )
    proc = spawn(
        project,
        "user",
        "link",
        "alice",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    code = srv.wait_qrcode(WAIT)
    srv.scan(code, "wx-alice")
    confirmed = srv.confirm(code)
    rc, out, err = finish(proc)
    assert rc == 0, err
    check_linked(project, srv, confirmed, out, err)


# --- the flow in-process: statuses the test server does not produce for lcbot ---------------


def test_binded_redirect_is_a_clear_failure():
    async def status(request: web.Request) -> web.Response:
        return web.json_response({"status": "binded_redirect"})

    async def qrcode(request: web.Request) -> web.Response:
        return web.json_response({"qrcode": "q", "qrcode_img_content": "https://x/q"})

    async def main() -> list[linking.LinkEvent]:
        app = web.Application()
        app.router.add_post("/ilink/bot/get_bot_qrcode", qrcode)
        app.router.add_get("/ilink/bot/get_qrcode_status", status)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        events: list[linking.LinkEvent] = []

        async def on_event(event: linking.LinkEvent) -> None:
            events.append(event)

        try:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(linking.LinkFailed, match="linked to this bot already"):
                    await linking.link(
                        lambda url: ILinkAPI(session, url or f"http://127.0.0.1:{port}"),
                        "alice",
                        on_event,
                        timeout=10,
                    )
        finally:
            await runner.cleanup()
        return events

    events = asyncio.run(main())
    assert [e.kind for e in events] == [linking.QRCODE]
    assert events[0].url == "https://x/q" and events[0].number == 1


def test_the_whole_flow_times_out(srv):
    async def main() -> None:
        async with aiohttp.ClientSession() as session:

            async def on_event(event: linking.LinkEvent) -> None:
                return None

            with pytest.raises(linking.LinkFailed, match="no confirmed scan within 1 s"):
                await linking.link(
                    lambda url: ILinkAPI(session, url or srv.base_url), "alice", on_event, timeout=1
                )

    asyncio.run(main())
