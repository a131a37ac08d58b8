"""Pieces of the WeChat transport that need no puppet: quote replies, the owner's echo,
the login tracker (scan events → one QR block per code), the liveness probe."""

from __future__ import annotations

import asyncio
import io
import json
import stat

from lcbot.transports.wechaty_inbound import Owner, strip_quote
from lcbot.transports.wechaty_liveness import Liveness
from lcbot.transports.wechaty_login import QR_LIFETIME, LoginTracker

DASHES = "- - - - - - - - - - - - - - -"


def test_quote_reply_is_the_reply_alone():
    assert strip_quote(f"「opsbot：disk full on db1」\n{DASHES}\nstatus") == "status"
    assert strip_quote(f"「alice: line one\nline two」\n{DASHES}\n ack db1 ") == "ack db1"
    assert strip_quote("status") == "status"
    assert strip_quote("「not a quote」 status") == "「not a quote」 status"


def test_the_owners_echo_is_recognised_even_when_the_puppet_alters_it(tmp_path):
    owner = Owner(tmp_path, keep=60)
    owner.remember("unknown command 'x' — send help\n")
    assert owner.is_echo("unknown command 'x' — send help")
    owner.remember("a & b\nline  two")
    assert owner.is_echo("a &amp; b<br/>line two")
    assert not owner.is_echo("status")
    owner.keep = -1
    assert not owner.is_echo("unknown command 'x' — send help")


def test_the_owner_account_is_trusted_on_first_use(tmp_path):
    owner = Owner(tmp_path)
    owner.logged_in("wxid_me")
    assert owner.trusted
    assert stat.S_IMODE((tmp_path / "wechat-owner.json").stat().st_mode) == 0o600
    later = Owner(tmp_path)  # a restart: the same account
    later.logged_in("wxid_me")
    assert later.trusted
    later.logged_in("wxid_someone_else")  # scanned the login QR with their own WeChat
    assert not later.trusted


def test_owner_commands_are_capped_per_minute(tmp_path):
    owner = Owner(tmp_path, per_minute=3)
    assert [owner.allow() for _ in range(5)] == [True, True, True, False, False]


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_login_tracker_shows_each_code_once_in_words(tmp_path):
    out, clock = io.StringIO(), Clock()
    tracker = LoginTracker(tmp_path, out=out, now=clock)
    tracker.scan(2, "https://login.weixin.qq.com/l/abc")
    block = out.getvalue()
    assert "Scan with WeChat to log in to lcbot (expires in ~2 min)" in block
    assert "https://wechaty.js.org/qrcode/" in block and ("▀" in block or "▄" in block)
    png = tmp_path / "login-qr.png"
    assert png.read_bytes().startswith(b"\x89PNG") and stat.S_IMODE(png.stat().st_mode) == 0o600
    state = json.loads((tmp_path / "wechat-login.json").read_text())
    assert state["state"] == "awaiting_scan" and state["qrcode"].endswith("/abc")
    assert tracker.status()["url"].startswith("https://wechaty.js.org/qrcode/")

    tracker.scan(2, "https://login.weixin.qq.com/l/abc")  # replayed on a reconnect
    assert out.getvalue() == block
    tracker.scan(3, None)
    assert tracker.state == "scanned" and tracker.status()["url"] is None
    tracker.logged_in("OpsBot (wxid_bot)")
    assert tracker.state == "logged_in" and not png.exists()
    state = json.loads((tmp_path / "wechat-login.json").read_text())
    assert state["user"] == "OpsBot (wxid_bot)" and state["qrcode"] is None


def test_an_expired_code_replayed_is_not_shown_as_current(tmp_path):
    out, clock = io.StringIO(), Clock()
    LoginTracker(tmp_path, out=out, now=clock).scan(2, "old-code")
    clock.t += QR_LIFETIME + 1
    later = LoginTracker(tmp_path, out=io.StringIO(), now=clock)  # a restarted bot
    later.scan(2, "old-code")  # PuppetServer replays the last code on connect
    assert later.state == "awaiting_scan" and later.qrcode is None
    later.scan(2, "new-code")
    assert later.qrcode == "new-code"


def test_liveness_probes_a_quiet_connection_and_reconnects_without_answer():
    async def scenario(answer: bool) -> tuple[list[str], Liveness]:
        reasons: list[str] = []
        live: Liveness

        class Stream:
            def emit(self, *args):
                return None

        class Puppet:
            _event_stream = Stream()

        async def ding() -> None:
            if answer:
                Puppet._event_stream.emit("dong")

        live = Liveness(0.2, ding, reasons.append)
        live.connecting(Puppet())
        live.start()
        deadline = asyncio.get_running_loop().time() + 10
        while not (reasons or live.last_probe == "answered"):
            assert asyncio.get_running_loop().time() < deadline, "no probe"
            await asyncio.sleep(0.02)
        await live.stop()
        return reasons, live

    import lcbot.transports.wechaty_liveness as module

    module.PROBE_TIMEOUT, saved = 0.3, module.PROBE_TIMEOUT
    try:
        reasons, live = asyncio.run(scenario(answer=True))
        assert reasons == [] and live.probes >= 1 and live.last_probe == "answered"
        reasons, live = asyncio.run(scenario(answer=False))
        assert reasons and "did not answer a ding" in reasons[0] and live.failed_probes >= 1
    finally:
        module.PROBE_TIMEOUT = saved
