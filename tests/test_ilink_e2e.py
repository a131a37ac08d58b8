"""``lcbot run --transport ilink`` end to end: a real bot process against the local iLink
server (real HTTP on 127.0.0.1, a 1-second long poll), with users linked as a QR scan does.

Commands and privileges, strangers, alerts inside and outside WeChat's reply window (held,
released when the user writes, "N messages waiting", fallback), rate-limit recovery,
restarts and kill -9 without loss or repeats, files through the CDN, session expiry, and
linking from chat.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from lcbot.builtin.linking import NEEDS_ILINK
from lcbot.transports.ilink_window import NUDGE_TEXT
from tests.ilink_kit import IlinkBot, ilink_project, status_of, texts, wait_text
from tests.ilink_server import ILinkServer
from tests.procs import lcbot, lcbot_json, make_project, query, run_console, wait_until
from tests.test_alerts_e2e import http_recorder

ALICE, BOB = "wx-alice", "wx-bob"
TEAM = {"alice": ("root", ALICE), "bob": ("user", BOB)}
SMALL = 'window = "1h"\nmax_replies = 3\n'


@pytest.fixture
def srv() -> Iterator[ILinkServer]:
    with ILinkServer(window=3600.0, max_replies=3, longpoll=1.0) as server:
        yield server
        assert server.errors == []


@pytest.fixture
def running():
    bots: list[IlinkBot] = []

    def start(project, **env) -> IlinkBot:
        bot = IlinkBot(project, **env)
        bots.append(bot)
        bot.wait_for("ilink: polling for")
        return bot

    yield start
    for bot in bots:
        if bot.proc.poll() is None:
            bot.stop()


def alert(project, text: str, level: str = "info") -> None:
    done = lcbot(project, "alert", text, "--level", level)
    assert done.returncode == 0, done.stderr


def held_rows(project) -> list[dict]:
    return [r for r in lcbot_json(project, "outbox", "list") if r["held"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_commands_privileges_strangers_status_and_healthz(tmp_path, srv, running):
    port = free_port()
    users = {**TEAM, "carol": ("user", None)}
    extra = f'[ingress]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
    project = ilink_project(tmp_path / "bot", srv, users, extra=extra, ilink=SMALL)
    from tests.ilink_kit import scan_link

    scan_link(srv, project / ".lcbot", "mallory", "wx-mallory")  # a link, but no such user
    bot = running(project)
    srv.user_send(ALICE, "whoami")
    srv.user_send(BOB, "whoami")
    srv.user_send(BOB, "link alice")  # root only
    srv.user_send("wx-mallory", "help")
    assert wait_text(srv, ALICE, "alice (root)") == ["alice (root)"]
    wait_text(srv, BOB, "bob (user)")
    wait_text(srv, BOB, "not allowed: link")  # maybe in the same send
    srv.user_send(ALICE, "help")
    assert "link NAME" in wait_text(srv, ALICE, "commands:")[-1]

    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").read())
    links = health["transport"]["links"]
    assert health["transport"]["name"] == "ilink" and health["transport"]["ready"] is True
    assert links["alice"]["polling"] is True and links["alice"]["window"] == "open"
    assert links["mallory"]["linked"] is True  # linked, yet nobody lcbot knows

    status = status_of(project)
    assert status["alice"]["linked"] and status["alice"]["polling"]
    assert status["alice"]["window"] == "open" and status["alice"]["replies_left"] == 2
    assert status["carol"]["linked"] is False and status["carol"]["window"] == "not linked"
    time.sleep(1.5)  # a stranger's message had time to be answered: it is not
    assert texts(srv, "wx-mallory") == []
    assert bot.stop() == 0
    assert "Traceback" not in bot.output


def test_alerts_inside_and_outside_the_window_held_released_and_waiting_line(
    tmp_path, srv, running
):
    limit = "max_chars = 60\n"  # every alert goes alone: the sends can be counted
    project = ilink_project(tmp_path / "bot", srv, TEAM, ilink=SMALL, ratelimit=limit)
    running(project)
    srv.user_send(ALICE, "whoami")
    wait_text(srv, ALICE, "alice (root)")
    alert(project, "first alert, inside the reply window: AAAA")
    wait_text(srv, ALICE, "AAAA")

    srv.advance(3601)  # WeChat's window closed; lcbot learns it from the refusal
    alert(project, "second alert, outside the reply window: BBBB")
    rows = wait_until(lambda: held_rows(project), "a held row in lcbot outbox list")
    assert "reply window closed" in rows[0]["held"] and "alice" in rows[0]["held"]
    assert status_of(project)["alice"]["held"] == 1
    assert srv.rejected(ALICE) and not any("BBBB" in t for t in texts(srv, ALICE))

    for letter in "CDE":  # more wait meanwhile (coalesced: none fits beside another)
        alert(project, f"more alerts while the window is closed: {letter * 4}")
    wait_until(lambda: status_of(project)["alice"]["held"] == 4, "four held for alice")

    srv.user_send(ALICE, "whoami")  # alice writes: 5 wait, WeChat takes 3 of them
    seen = wait_text(srv, ALICE, "messages waiting")
    last = next(t for t in seen if "messages waiting" in t)
    assert last.endswith("\n— 2 messages waiting — send anything to receive them"), last
    rows = wait_until(lambda: held_rows(project), "the rest held for the reply budget")
    assert "reply budget used" in rows[0]["held"]
    time.sleep(1.0)
    assert len(texts(srv, ALICE)) == 2 + 3  # nothing burnt against WeChat's budget
    assert len(srv.rejected(ALICE)) == 1  # the one refusal that told lcbot

    srv.user_send(ALICE, "thanks")
    for letter in "BCDE":
        wait_text(srv, ALICE, letter * 4)
    wait_text(srv, ALICE, "alice (root)", count=2)
    wait_until(
        lambda: query(project, "SELECT count(*) FROM outbox WHERE state != 'sent'") == [(0,)],
        "everything sent",
    )
    assert query(project, "SELECT max(attempts) FROM outbox") == [(0,)]  # no send failed
    assert held_rows(project) == []


def test_a_held_critical_alert_also_goes_to_the_fallback(tmp_path, srv, running):
    with http_recorder() as (port, bodies):
        extra = f'[alerts]\nfallback_after = 0.5\nfallback_urls = ["json://127.0.0.1:{port}/"]\n'
        project = ilink_project(tmp_path / "bot", srv, TEAM, extra=extra, ilink=SMALL)
        running(project)  # nobody wrote yet: no context token, every message is held
        alert(project, "database down", level="critical")
        wait_until(lambda: any("database down" in b for b in bodies), "the fallback POST")
        assert texts(srv, ALICE) == [] and texts(srv, BOB) == []
        assert "no message from" in held_rows(project)[0]["held"]
        srv.user_send(BOB, "hello")
        wait_text(srv, BOB, "database down")  # the chat copy follows when bob writes
        assert len(bodies) == 1


def test_rate_limit_backs_off_and_delivers_without_failed_attempts(tmp_path, srv, running):
    project = ilink_project(tmp_path / "bot", srv, TEAM, ilink=SMALL)
    bot = running(project, LCBOT_ILINK_BACKOFF="0.3")  # the 30 s first step, shortened
    srv.user_send(ALICE, "whoami")
    wait_text(srv, ALICE, "alice (root)")
    srv.rate_limit(ALICE, 1.5)
    alert(project, "sent once the rate limit lifts")
    wait_text(srv, ALICE, "rate limit lifts")
    assert any("rate limited" in r["errmsg"] for r in srv.rejected(ALICE))
    assert query(project, "SELECT max(attempts) FROM outbox") == [(0,)]
    bot.wait_for("rate-limits sends to alice")


def test_restart_and_kill_9_neither_lose_nor_repeat(tmp_path, srv, running):
    project = ilink_project(tmp_path / "bot", srv, TEAM, ilink='window = "1h"\n')
    bot = running(project)
    srv.user_send(ALICE, "whoami")
    wait_text(srv, ALICE, "alice (root)")
    assert bot.stop() == 0

    bot = running(project)  # the cursor and the seen ids survived: nothing again
    srv.user_send(BOB, "whoami")
    wait_text(srv, BOB, "bob (user)")
    assert texts(srv, ALICE) == ["alice (root)"]
    time.sleep(1.5)  # the long poll is waiting (1 s polls): kill -9 in the middle of one
    bot.kill()
    srv.user_send(ALICE, "whoami")  # while the bot is dead
    running(project)
    wait_text(srv, ALICE, "alice (root)", count=2)
    time.sleep(2.0)  # two more polls: still nothing repeated
    assert texts(srv, ALICE) == ["alice (root)"] * 2
    assert texts(srv, BOB) == ["bob (user)"]


REPORT = """\
from lcbot import hookimpl


@hookimpl
def register_commands(registry):
    @registry.command("report", help="send a file")
    def report(ctx):
        ctx.reply_file(b"lcbot report: all good\\n" * 100, "report.txt")
        return "report attached"
"""


def test_a_file_goes_through_the_cdn_and_the_nudge_asks_once(tmp_path, srv, running):
    nudge = 'nudge = "1s"\n'  # a second after alice's last message: ask her for a word
    project = ilink_project(tmp_path / "bot", srv, TEAM, plugins={"report": REPORT}, ilink=nudge)
    running(project)
    srv.user_send(ALICE, "report")
    wait_text(srv, ALICE, "report attached")
    (upload,) = wait_until(lambda: srv.uploads(ALICE), "the file upload")
    assert upload["name"] == "report.txt"
    assert upload["data"] == b"lcbot report: all good\n" * 100
    wait_text(srv, ALICE, NUDGE_TEXT)
    time.sleep(1.5)
    assert texts(srv, ALICE).count(NUDGE_TEXT) == 1  # once per message from alice
    assert texts(srv, BOB) == []  # bob never wrote: no window to keep open


def test_session_expiry_tells_root_once_and_link_from_chat_renews_it(tmp_path, running):
    srv = ILinkServer(longpoll=1.0).start()  # WeChat's default budget: 10 per message
    try:
        session_expiry_and_link_from_chat(tmp_path, srv, running)
    finally:
        srv.stop()


def session_expiry_and_link_from_chat(tmp_path, srv, running) -> None:
    project = ilink_project(tmp_path / "bot", srv, TEAM)
    bot = running(project)
    srv.user_send(ALICE, "whoami")
    wait_text(srv, ALICE, "alice (root)")
    srv.expire_session(BOB)
    wait_text(srv, ALICE, "WeChat ended the link of bob")
    wait_until(lambda: status_of(project)["bob"]["window"] == "expired", "bob expired")
    assert bot.stop() == 0
    bot = running(project)  # a restart does not tell again
    srv.user_send(ALICE, "link bob")
    seen = wait_text(srv, ALICE, "QR link for bob")
    assert sum("WeChat ended the link of bob" in t for t in seen) == 1
    qr = next(t for t in seen if "QR link for bob" in t)
    code = srv.wait_qrcode()
    assert code in qr or srv.base_url.split("//")[1] in qr or "http" in qr
    srv.scan(code, BOB)
    wait_text(srv, ALICE, "scanned")
    srv.confirm(code)
    wait_text(srv, ALICE, "bob is linked")
    srv.user_send(BOB, "whoami")
    wait_text(srv, BOB, "bob (user)")
    assert "ilink" in (project / "lcbot.toml").read_text()
    unlinked = lcbot(project, "user", "unlink", "bob")
    assert unlinked.returncode == 0, unlinked.stderr
    bot.wait_for("ilink: bob was unlinked")  # the running bot stops polling for bob
    assert bot.stop() == 0


def test_link_needs_the_ilink_transport(tmp_path):
    project = make_project(tmp_path / "bot", {"root": "root", "bob": "user"})
    ran = run_console(project, "link bob\nhelp\n")
    assert NEEDS_ILINK in ran.stdout
    assert "link NAME" not in ran.stdout  # hidden from help elsewhere


def test_no_linked_users_says_how_to_link(tmp_path, srv):
    project = ilink_project(tmp_path / "bot", srv, {"alice": ("root", None)})
    bot = IlinkBot(project)
    bot.wait_for("no linked users: run `lcbot user link NAME`")
    time.sleep(1.5)
    assert bot.stop() == 0
    assert bot.output.count("no linked users") == 1


def test_poll_failures_are_one_line_and_transport_ilink_in_the_config(tmp_path):
    srv = ILinkServer(longpoll=1.0).start()
    project = ilink_project(tmp_path / "bot", srv, {"alice": ("root", ALICE)})
    toml = project / "lcbot.toml"
    toml.write_text(toml.read_text().replace("[bot]\n", '[bot]\ntransport = "ilink"\n', 1))
    bot = IlinkBot(project, transport=None)  # plain `lcbot run`: [bot] transport decides
    bot.wait_for("ilink: polling for alice")
    srv.stop()  # the service is gone: polls fail, again and again
    bot.wait_for("polling for alice failed")
    time.sleep(4.5)  # retries after 2 s and 4 s
    assert bot.stop() == 0
    # one line per distinct reason ("Server disconnected" may come first), not one per retry
    assert bot.output.count("Cannot connect to host") == 1, bot.output
    assert bot.output.count("polling for alice failed") <= 2, bot.output
    assert "Traceback" not in bot.output
