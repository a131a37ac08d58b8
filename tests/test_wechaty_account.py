"""WeChat as real accounts behave: the login survives lcbot, errors and re-logins are
survived, the login can be followed, and what real accounts send is handled.

A real ``lcbot run --transport wechaty`` against the test server, which models a real
puppet: the login persists across client connections and a Stop RPC logs the account out.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.procs import lcbot, wait_until
from tests.wechat_kit import (
    BOB,
    BOT,
    BOT_NAME,
    CAROL,
    CONFIG,
    DORA,
    ME,
    WAIT,
    project_with_users,
    texts_to,
    wait_text,
)
from tests.wechaty_mock import free_port

pytestmark = pytest.mark.wechat

NEWCOMER = "wxid_newcomer"


def with_ingress(project: Path, extra: str = "") -> int:
    """Enable /healthz on a free loopback port (and add ``extra`` TOML); the port."""
    port = free_port()
    toml = project / "lcbot.toml"
    toml.write_text(
        toml.read_text() + f'\n[ingress]\nenabled = true\nlisten = "127.0.0.1:{port}"\n' + extra
    )
    return port


def healthz(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return json.loads(response.read())["transport"]


def attempts(port: int) -> int:
    """Connection attempts so far (0 while the ingress is not listening yet)."""
    try:
        return healthz(port)["attempts"]
    except OSError:
        return 0


def wechaty_section(extra: str) -> str:
    """CONFIG with more keys in its [wechaty] table."""
    return CONFIG.replace(
        '[wechaty]\nrooms = "mention"\n', f'[wechaty]\nrooms = "mention"\n{extra}'
    )


def connections(bot) -> int:
    return bot.output.count("connecting to the puppet service at")


def test_login_survives_lcbot_stopping_and_starting(server, wechat_bot, tmp_path):
    stops_before = server.health()["clientStops"]
    project = project_with_users(tmp_path / "p")
    first = wechat_bot(project)
    assert first.stop() == 0
    health = server.health()
    assert health["loggedIn"] and health["selfId"] == BOT, health  # no logout
    assert health["clientStops"] == stops_before  # lcbot never sends Stop
    second = wechat_bot(project)  # logs in without a new scan (nothing calls server.login)
    server.say(ME, "whoami")
    wait_text(server, ME, lambda t: "me" in t and "root" in t, "whoami")
    assert second.stop() == 0
    assert server.health()["loggedIn"] and server.health()["clientStops"] == stops_before


def test_gerror_events_are_logged_and_survived(server, wechat_bot, tmp_path):
    bot = wechat_bot(project_with_users(tmp_path / "p"))
    server.error("puppet hiccup: 42")
    bot.wait_log(r"the puppet service reported an error: .*puppet hiccup: 42")
    server.say(BOB, "whoami")
    wait_text(server, BOB, lambda t: "bob" in t, "whoami after the error")
    assert connections(bot) == 1, bot.output  # the same connection: no reconnect
    assert "internal error" not in bot.output and "Traceback" not in bot.output


def test_logout_then_scan_and_login_on_the_same_connection(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p")
    port = with_ingress(project)
    bot = wechat_bot(project)
    server.logout()
    bot.wait_log(r"logged out of WeChat")
    assert lcbot(project, "alert", "db1 down", "--level", "critical").returncode == 0

    server.scan("Waiting", "https://login.weixin.qq.com/l/test-code-1")
    bot.wait_log(r"Scan with WeChat to log in to lcbot \(expires in ~2 min\)")
    assert "https://wechaty.js.org/qrcode/https%3A%2F%2Flogin.weixin.qq.com" in bot.output
    png = project / ".lcbot" / "login-qr.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    status = healthz(port)
    assert status["ready"] is False and status["login"]["state"] == "awaiting_scan"
    assert status["login"]["url"].endswith("test-code-1") and status["login"]["since"]
    assert "internal error" not in bot.output

    server.scan("Scanned")
    bot.wait_log(r"QR code scanned; confirm the login on the phone")
    server.login(BOT, BOT_NAME)
    bot.wait_logged_in(count=2)
    for contact in (ME, BOB, CAROL):  # what waited goes out, without a restart
        wait_text(server, contact, lambda t: t == "CRITICAL db1 down", "the alert")
    assert connections(bot) == 1, bot.output
    assert healthz(port)["login"]["state"] == "logged_in" and not png.exists()
    assert bot.output.count("Scan with WeChat") == 1


def test_real_message_kinds_and_quote_replies(server, wechat_bot, tmp_path):
    bot = wechat_bot(project_with_users(tmp_path / "p"))
    kinds = ("image", "voice", "video", "sticker", "file", "link", "recall", "system")
    for kind in kinds:
        server.say_kind(ME, kind)
    server.say_quote(ME, BOT_NAME, "CRITICAL db1 down", "whoami")
    wait_text(server, ME, lambda t: "me" in t and "root" in t, "the quote-reply's command")
    server.say(ME, "ping-marker-after-kinds")
    wait_text(server, ME, lambda t: "ping-marker-after-kinds" in t, "the marker's answer")
    to_me = texts_to(server, ME)
    assert not any("<?xml" in t or "<msg" in t or "「" in t for t in to_me), to_me
    assert len([t for t in to_me if t.startswith("unknown command")]) == 1, to_me  # the marker
    assert "Traceback" not in bot.output


def test_friend_request_with_a_pairing_code_is_accepted_and_binds(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p")
    added = lcbot(project, "user", "add", "dora", "--pri", "user")
    code = added.stdout.split("single use): ")[1].split()[0]
    bot = wechat_bot(project)
    plain = server.friend_request(DORA, "hi, I am Dora")
    wrong = server.friend_request(NEWCOMER, "bind 22222-22222")
    good = server.friend_request(NEWCOMER, f"hello! bind {code}")
    wait_until(
        lambda: any(f["id"] == good and f["accepted"] for f in server.friendships()),
        f"the request with the code accepted; log:\n{bot.output}",
        WAIT,
    )
    accepted = {f["id"]: f["accepted"] for f in server.friendships()}
    assert not accepted[plain] and not accepted[wrong]
    wait_text(server, NEWCOMER, lambda t: t.startswith("bound: you are dora"), "the welcome")
    assert f'wxid = "{NEWCOMER}"' in (project / "lcbot.toml").read_text()
    server.say(NEWCOMER, "whoami")
    wait_text(server, NEWCOMER, lambda t: "dora" in t, "dora's whoami")
    assert "friend request from" in bot.output


def test_friend_requests_are_ignored_with_accept_friends_never(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p", wechaty_section('accept_friends = "never"\n'))
    code = (
        lcbot(project, "user", "add", "eve", "--pri", "user").stdout.split("use): ")[1].split()[0]
    )
    bot = wechat_bot(project)
    request = server.friend_request("wxid_eve", f"bind {code}")
    bot.wait_log(r"friend request from .* ignored \(\[wechaty\] accept_friends\)")
    assert not next(f for f in server.friendships() if f["id"] == request)["accepted"]


def test_group_invitations_only_from_root_and_admin(server, wechat_bot, tmp_path):
    bot = wechat_bot(project_with_users(tmp_path / "p"))
    from_user = server.room_invite("5151@chatroom", CAROL, "carol's group")
    from_admin = server.room_invite("5252@chatroom", BOB, "ops-2")
    wait_until(
        lambda: any(i["id"] == from_admin and i["accepted"] for i in server.room_invites()),
        "bob's invitation accepted",
        WAIT,
    )
    bot.wait_log(r"invitation to group .carol's group. by .* ignored: not root or admin")
    assert not next(i for i in server.room_invites() if i["id"] == from_user)["accepted"]
    bot.wait_log(r"joined group 'ops-2', invited by bob")


def test_the_owner_commands_the_bot_from_file_transfer(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p", wechaty_section('self_user = "me"\n'))
    bot = wechat_bot(project)
    server.say_self("filehelper", "whoami")
    wait_text(server, "filehelper", lambda t: "me" in t and "root" in t, "whoami to File Transfer")
    server.say_self(ME, "status")  # the owner chatting with someone else: not a command
    server.say_self("filehelper", "nosuchcommand")
    wait_text(server, "filehelper", lambda t: t.startswith("unknown command"), "the answer")
    time.sleep(1.5)  # the bot's own replies echo back as the account's messages
    replies = [m for m in server.sent() if m["to"] == "filehelper"]
    assert len(replies) == 2, replies  # no reply to its own echo
    assert not [m for m in server.sent() if m["to"] == ME]
    assert "Traceback" not in bot.output

    # someone else scans the login QR code with their own WeChat: no owner commands
    server.logout()
    server.login("wxid_intruder", "Intruder")
    try:
        bot.wait_log(r"not the owner's account wxid_lcbot: File Transfer commands are off")
        server.say_self("filehelper", "whoami")
        server.say(ME, "ping-marker-owner")  # answered: the account works for users
        wait_text(server, ME, lambda t: "ping-marker-owner" in t, "the marker's answer")
        assert len([m for m in server.sent() if m["to"] == "filehelper"]) == 2
    finally:
        server.logout()
        server.login(BOT, BOT_NAME)


def test_self_user_must_be_a_user(server, tmp_path):
    project = project_with_users(tmp_path / "p", wechaty_section('self_user = "nobody"\n'))
    result = lcbot(project, "run", "--transport", "wechaty", **server.env())
    assert result.returncode == 2 and "wechaty.self_user: no user named 'nobody'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_frozen_gateway_is_probed_and_reconnected(server, wechat_bot, tmp_path):
    project = project_with_users(
        tmp_path / "p", wechaty_section("liveness = 2\nsend_timeout = 3\n")
    )
    port = with_ingress(project)
    bot = wechat_bot(project)
    with server.frozen():
        assert lcbot(project, "alert", "sent while frozen", "--level", "critical").returncode == 0
        bot.wait_log(r"WeChat did not confirm the send|did not confirm", timeout=WAIT)
        bot.wait_log(r"probing it \(ding\)", timeout=WAIT)
        bot.wait_log(r"did not answer a ding within \d+ s; reconnecting", timeout=WAIT)
        status = healthz(port)
        assert status["liveness"]["failed_probes"] >= 1
    bot.wait_logged_in(count=2)  # the login survived the freeze: no scan needed
    for contact in (ME, BOB, CAROL):
        wait_text(server, contact, lambda t: t == "CRITICAL sent while frozen", "the alert")
    assert healthz(port)["ready"] is True


@pytest.mark.parametrize("case", ["wrong-token", "unreachable"])
def test_connection_failures_are_one_clear_line(server, tmp_path, case):
    from tests.wechat_kit import WeChatBot

    project = project_with_users(tmp_path / "p")
    port = with_ingress(project)
    env = (
        {"WECHATY_PUPPET_SERVICE_TOKEN": "not-the-token"}
        if case == "wrong-token"
        else {"WECHATY_PUPPET_SERVICE_ENDPOINT": f"127.0.0.1:{free_port()}"}
    )
    expected = (
        "refused the token in $WECHATY_PUPPET_SERVICE_TOKEN"
        if case == "wrong-token"
        else "cannot reach the puppet service at"
    )
    bot = WeChatBot(project, server, env)
    try:
        wait_until(lambda: attempts(port) >= 3, "three attempts", WAIT)  # 1 s, 2 s
        lines = [
            line
            for line in bot.output.splitlines()
            if ("WARNING" in line or "ERROR" in line) and "lcbot.ingress" not in line
        ]
        assert len(lines) == 1 and expected in lines[0], bot.output
        reason = healthz(port)["reason"]
        assert expected in reason and "not-the-token" not in bot.output + reason
    finally:
        bot.stop()
        bot.log.close()


def test_a_tls_gateway_is_named_with_its_fix(tmp_path):
    from tests.wechat_kit import WeChatBot
    from tests.wechaty_mock import WechatyMockServer

    with WechatyMockServer(tls=True) as tls_server:
        project = project_with_users(tmp_path / "p")
        bot = WeChatBot(project, tls_server)
        try:
            bot.wait_log(r"WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_SERVER=true")
            assert re.search(r"WARNING lcbot.wechaty: WeChat: .*TLS", bot.output), bot.output
        finally:
            bot.stop()
            bot.log.close()


FILES_PLUGIN = """
from lcbot import hookimpl


@hookimpl
def register_commands(registry):
    @registry.command("chart")
    def chart(ctx):
        ctx.reply_file(bytes(range(256)) * 1000, name="disk.png")

    @registry.command("huge")
    def huge(ctx):
        ctx.reply_file(b"x" * (3 * 1024 * 1024), name="huge.bin")
"""


def test_files_go_out_as_filebox_through_the_outbox(server, wechat_bot, tmp_path):
    import hashlib

    project = project_with_users(tmp_path / "p")
    (project / "plugins" / "files.py").write_text(FILES_PLUGIN)
    bot = wechat_bot(project)
    server.say(ME, "chart")
    sent = wait_until(
        lambda: next((m for m in server.sent() if m.get("name") == "disk.png"), None),
        "the file sent to me",
        WAIT,
    )
    data = bytes(range(256)) * 1000
    assert sent["to"] == ME and sent["size"] == len(data)
    assert sent["sha256"] == hashlib.sha256(data).hexdigest()
    wait_until(lambda: not list((project / ".lcbot" / "files").iterdir()), "the copy removed", WAIT)
    server.say(ME, "huge")  # above what a puppet service carries (4 MiB gRPC, base64)
    wait_text(server, ME, lambda t: "huge failed" in t and "limit" in t, "the size refusal")
    assert not any(m.get("name") == "huge.bin" for m in server.sent())
    assert "Traceback" not in bot.output


def test_lcbot_wechat_qr_shows_the_running_bots_code(server, wechat_bot, tmp_path):
    project = project_with_users(tmp_path / "p")
    bot = wechat_bot(project)
    shown = lcbot(project, "wechat", "qr")
    assert shown.returncode == 1 and "logged in as LcBot (wxid_lcbot)" in shown.stdout
    server.logout()
    bot.wait_log(r"logged out of WeChat")
    server.scan("Waiting", "https://login.weixin.qq.com/l/qr-for-cli")
    bot.wait_log(r"Scan with WeChat to log in to lcbot")
    shown = lcbot(project, "wechat", "qr")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Scan with WeChat to log in to lcbot" in shown.stdout
    assert "https://wechaty.js.org/qrcode/https%3A%2F%2Flogin.weixin.qq.com%2Fl%2Fqr-for-cli" in (
        shown.stdout
    )
    as_json = json.loads(lcbot(project, "wechat", "qr", "--json").stdout)
    assert as_json["state"] == "awaiting_scan" and as_json["qrcode"].endswith("qr-for-cli")
    server.login(BOT, BOT_NAME)
    bot.wait_logged_in(count=2)


def test_the_login_link_reaches_the_fallback_while_logged_out(server, wechat_bot, tmp_path):
    from tests.test_alerts_e2e import http_recorder

    with http_recorder() as (port, bodies):
        extra = f'\n[alerts]\nfallback_after = 0.5\nfallback_urls = ["json://127.0.0.1:{port}/"]\n'
        project = project_with_users(tmp_path / "p", CONFIG + extra)
        bot = wechat_bot(project)
        server.logout()
        server.scan("Waiting", "https://login.weixin.qq.com/l/fallback-code")
        bot.wait_log(r"the WeChat login link was sent to the fallback")
        (body,) = [b for b in bodies if "fallback-code" in b]
        payload = json.loads(body)
        assert payload["title"] == "testbot: WeChat login"
        assert "scan https://wechaty.js.org/qrcode/" in payload["message"]
        time.sleep(1.5)  # checked every second: the same link is not sent again
        assert len([b for b in bodies if "fallback-code" in b]) == 1
        server.login(BOT, BOT_NAME)
        bot.wait_logged_in(count=2)
