"""End to end: alerts through real ``lcbot alert`` and ``lcbot run --transport console``
processes on a real SQLite file (``<project>/.lcbot/lcbot.db``).

Every wait is bounded by a deadline; see ``tests/procs.py`` for the helpers.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lcbot.alerts import make_alert
from lcbot.db import connect, transaction
from lcbot.db.alerts import insert_new
from tests.procs import (
    REPO,
    TEAM,
    WAIT,
    bots,
    db_path,
    lcbot,
    lcbot_json,
    make_project,
    patched,
    query,
    run_console,
    wait_until,
)

EVERYONE = ["me", "bob", "carol"]


def lines_for(text: str, users: list[str]) -> list[str]:
    """What the console prints when each of ``users`` gets the one-line message ``text``."""
    return [text if user == "me" else f"→ {user}: {text}" for user in users]


def expect_all(bot, wanted: list[str], timeout: float = WAIT) -> list[float]:
    """Wait for every line of ``wanted`` (any order); returns when each arrived."""
    missing = Counter(wanted)
    times = []
    while +missing:
        bot.expect(lambda line: missing[line] > 0, timeout)
        missing[bot.seen[-1]] -= 1
        times.append(bot.times[-1])
    return times


def alert_state(project: Path, alert_id: int) -> str:
    return query(project, "SELECT state FROM alerts WHERE id = ?", (alert_id,))[0][0]


def routed(project: Path, alert_id: int) -> str | None:
    """The alert's state once the bot has routed it, else None."""
    state = alert_state(project, alert_id)
    return None if state == "new" else state


@pytest.fixture
def team(tmp_path: Path) -> Path:
    """A project with root ``me``, admin ``bob`` and user ``carol``; no plugins."""
    return make_project(tmp_path / "bot")


# --- lcbot alert, with the bot running and stopped ------------------------------------------------


def test_cli_alert_reaches_running_bot_within_a_second(team):
    with bots() as start:
        bot = start(team)
        bot.send("whoami")
        bot.expect("me (root)")  # started: alerts are polled from now on

        began = time.monotonic()
        result = lcbot(team, "alert", "disk full", "--level", "critical")
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(r"\d+\n", result.stdout), result.stdout  # just the id
        critical_id = int(result.stdout)
        arrived = expect_all(bot, lines_for("CRITICAL disk full", EVERYONE))
        latency = max(arrived) - began
        assert latency < 1.5, f"alert took {latency:.2f}s to reach every user"

        bad = lcbot(team, "alert", "oops", "--level", "bad")
        assert bad.returncode == 2
        assert "unknown level 'bad'" in bad.stderr
        assert bad.stdout == ""
        assert query(team, "SELECT count(*) FROM alerts") == [(1,)]  # nothing stored

        # text from stdin; a warning goes to admins and root only (default routes)
        piped = lcbot(team, "alert", "-", "--level", "warning", input="replica lag 40s\n")
        assert piped.returncode == 0, piped.stderr
        warning_id = int(piped.stdout)
        assert warning_id > critical_id
        expect_all(bot, lines_for("WARNING replica lag 40s", ["me", "bob"]))
        assert wait_until(lambda: routed(team, warning_id), "warning routed") == "delivered"
        bot.end_input()
        assert bot.wait() == 0
        bot.rest()
        critical = lines_for("CRITICAL disk full", EVERYONE)
        warning = lines_for("WARNING replica lag 40s", ["me", "bob"])
        # exactly these lines: carol got no warning, nobody got anything twice
        assert Counter(bot.seen) == Counter(["me (root)", *critical, *warning])
        assert "Traceback" not in bot.stderr

    recent = {a["id"]: a for a in lcbot_json(team, "alerts", "recent")}
    assert recent[critical_id]["outcome"] == {"state": "delivered", "to": EVERYONE}
    assert recent[warning_id]["outcome"] == {"state": "delivered", "to": ["me", "bob"]}
    assert recent[warning_id]["text"] == "replica lag 40s"
    assert recent[warning_id]["source"] == "cli"


def test_alert_raised_while_stopped_is_sent_at_next_start(team):
    assert lcbot_json(team, "alerts", "recent") == []
    assert not db_path(team).exists()  # looking does not create the database
    raised = lcbot(team, "alert", "nightly backup failed", "-l", "critical", "--title", "backup")
    assert raised.returncode == 0, raised.stderr
    alert_id = int(raised.stdout)
    assert lcbot_json(team, "alerts", "recent")[0]["state"] == "new"
    empty = lcbot(team, "alert", "-", "--level", "critical", input="  \n")
    assert empty.returncode == 2
    assert "alert text is empty" in empty.stderr

    result = run_console(team, "")  # empty input: start, drain, stop
    assert result.returncode == 0, result.stderr
    text = "CRITICAL backup: nightly backup failed"
    assert sorted(result.stdout.splitlines()) == sorted(lines_for(text, EVERYONE))

    (alert,) = lcbot_json(team, "alerts", "recent")
    assert alert["id"] == alert_id
    assert alert["state"] == "delivered"
    assert alert["outcome"]["to"] == EVERYONE
    assert alert["title"] == "backup"


def test_dedup_by_key_and_resolved(team):
    def raise_(*args: str) -> int:
        result = lcbot(team, "alert", *args, "--level", "critical", "--key", "load")
        assert result.returncode == 0, result.stderr
        return int(result.stdout)

    high = lines_for("CRITICAL load high", EVERYONE)
    with bots() as start:
        bot = start(team)
        first = raise_("load high")
        expect_all(bot, high)
        repeat = raise_("load high")
        assert wait_until(lambda: routed(team, repeat), "repeat routed") == "deduplicated"
        resolved = raise_("load normal", "--resolved")
        expect_all(bot, lines_for("RESOLVED load normal", EVERYONE))
        again = raise_("load high")  # the resolve ended the episode: delivered again
        expect_all(bot, high)
        bot.end_input()
        assert bot.wait() == 0
        bot.rest()
        assert Counter(bot.seen) == Counter(
            high + lines_for("RESOLVED load normal", EVERYONE) + high
        )

    # the key's state is stored: a repeat after a restart is still a repeat
    later = raise_("load high")
    result = run_console(team, "")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""

    recent = lcbot_json(team, "alerts", "recent")
    assert [(a["id"], a["state"]) for a in recent] == [
        (later, "deduplicated"),
        (again, "delivered"),
        (resolved, "delivered"),
        (repeat, "deduplicated"),
        (first, "delivered"),
    ]
    assert recent[2]["resolved"] is True
    assert recent[2]["outcome"]["to"] == EVERYONE


# --- crash safety ---------------------------------------------------------------------------------

ALERTS = 1000
ALERT_LINE = re.compile(r"^(?:→ (bob|carol): )?CRITICAL (alert \d{4})$")


def parse_alert_lines(lines: list[str]) -> list[tuple[str | None, str]]:
    """(prefixed recipient or None, alert text) per line; any other line fails the test."""
    parsed = []
    for line in lines:
        match = ALERT_LINE.match(line)
        assert match, f"unexpected output line {line!r}"
        parsed.append((match[1], match[2]))
    return parsed


def test_sigkill_mid_drain_loses_no_alert_and_repeats_at_most_one_message(tmp_path):
    max_chars = 300
    project = make_project(
        tmp_path / "bot",
        extra=f"""
        [ratelimit]
        per_recipient_gap = 0.05
        max_chars = {max_chars}
        """,
    )
    texts = [f"alert {i:04d}" for i in range(1, ALERTS + 1)]
    db = connect(db_path(project))
    with transaction(db):  # no key: no de-duplication
        insert_new(db, [make_alert(text, "critical") for text in texts])
    db.close()
    # one message to a recipient holds at most this many alert lines (joined by "\n")
    per_message = (max_chars + 1) // (len("CRITICAL alert 0001") + 1)

    # Run 1: killed once some, but not all, alert lines were printed.
    with bots() as start:
        bot = start(project)
        printed = [0]

        def enough(line: str) -> bool:
            printed[0] += bool(ALERT_LINE.match(line))
            return printed[0] >= 300

        bot.expect(enough)
        bot.proc.kill()
        assert bot.wait() == -signal.SIGKILL
        bot.rest()
        run1 = parse_alert_lines(bot.seen)
    assert len(run1) < len(TEAM) * ALERTS, "run 1 printed everything before the kill"

    rows = query(project, "SELECT id, recipient, text, state FROM outbox ORDER BY id")
    assert len(rows) == len(TEAM) * ALERTS  # every alert was routed in one transaction
    sent1 = Counter(text[len("CRITICAL ") :] for _, _, text, state in rows if state == "sent")
    pending1: dict[str, list[str]] = {user: [] for user in TEAM}
    for _, recipient, text, state in rows:
        if state == "pending":
            pending1[recipient].append(text[len("CRITICAL ") :])
    assert 0 < sum(sent1.values()) < len(rows)
    count1 = Counter(text for _, text in run1)
    for text in texts:  # marked sent ⇒ was printed
        assert count1[text] >= sent1[text], text

    # a recipient's last message of run 1 is either committed or the head of its queue
    for user in ("bob", "carol"):
        starts = [text for who, text in run1 if who == user]
        if starts and pending1[user]:
            assert starts[-1] <= pending1[user][0], (user, starts[-1], pending1[user][0])

    # Run 2: no input; everything still pending is sent, then it exits.
    result = run_console(project, "")
    assert result.returncode == 0, result.stderr
    run2 = parse_alert_lines(result.stdout.splitlines())
    total_pending = sum(map(len, pending1.values()))
    assert f"{total_pending} message(s) pending from an earlier run" in result.stderr
    count2 = Counter(text for _, text in run2)
    for user in ("bob", "carol"):  # each recipient's queue resumes where it stopped
        starts = [text for who, text in run2 if who == user]
        assert starts[:1] == pending1[user][:1], user

    # every pending row printed exactly once in run 2; every alert reached every user
    heads = Counter(text for queue in pending1.values() for text in queue[:per_message])
    waiting = Counter(text for queue in pending1.values() for text in queue)
    duplicates = 0
    for text in texts:
        assert count2[text] == waiting[text], (text, count2[text], waiting[text])
        assert count1[text] + count2[text] >= len(TEAM), text
        repeated = count1[text] - sent1[text]  # printed in run 1 but not marked sent
        assert repeated <= heads[text], f"{text} repeated {repeated}× beyond a queue head"
        duplicates += repeated
    assert duplicates <= len(TEAM) * per_message, duplicates

    assert query(project, "SELECT state, count(*) FROM outbox GROUP BY state") == [
        ("sent", len(TEAM) * ALERTS)
    ]
    assert query(project, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
    alerts = query(project, "SELECT text, state, outcome FROM alerts ORDER BY id")
    assert [a[0] for a in alerts] == texts
    for text, state, outcome in alerts:
        assert state == "delivered", text
        assert json.loads(outcome)["to"] == EVERYONE, text
    per_user = query(project, "SELECT recipient, count(DISTINCT text) FROM outbox GROUP BY 1")
    assert dict(per_user) == dict.fromkeys(TEAM, ALERTS)


# --- scheduled jobs and sysmon --------------------------------------------------------------------

TICKER = """\
import logging

from lcbot import hookimpl

log = logging.getLogger("ticker")


def tick(bot):
    calls = bot.state.get("calls", 0) + 1
    bot.state["calls"] = calls
    if calls == 1:
        raise RuntimeError("first tick fails")
    bot.alert("tick", level="critical", key=None)


def never():
    pass


@hookimpl
def lcbot_startup(bot):
    bot.every(0.2, lambda: tick(bot), name="tick")
    job = bot.cron("* * * * *", never, name="minutely")
    log.warning("cron job %s: %s", type(job).__name__, job.name)
"""


def test_every_job_survives_its_first_failure_and_cron_returns_a_job(tmp_path):
    project = make_project(tmp_path / "bot", {"me": "root"}, plugins={"ticker": TICKER})
    with bots() as start:
        bot = start(project)
        bot.expect("CRITICAL tick", timeout=10)
        bot.expect("CRITICAL tick", timeout=10)
        log = wait_until(
            lambda: "RuntimeError: first tick fails" in bot.stderr and bot.stderr,
            "the failure's traceback on stderr",
        )
        assert "scheduled job tick failed; it keeps its schedule" in log
        assert "Traceback (most recent call last)" in log
        assert log.count("RuntimeError: first tick fails") == 1  # only the first call failed
        assert "cron job Job: minutely" in log
        bot.end_input()
        assert bot.wait() == 0
    assert query(project, "SELECT count(*) FROM alerts WHERE text = 'tick'")[0][0] >= 2


def test_sysmon_disk_warning_reaches_root_and_admin(tmp_path):
    project = make_project(
        tmp_path / "bot",
        extra="""
        [sysmon]
        interval = 1
        disk_warn = 0.001
        paths = ["/"]
        """,
    )
    shutil.copy(REPO / "plugins" / "sysmon.py", project / "plugins" / "sysmon.py")
    warning = re.compile(r"^(→ bob: )?WARNING disk: disk / is \d+% full \(limit 0%\)$")
    with bots() as start:
        bot = start(project)
        first = bot.expect(warning.match, timeout=10)
        second = bot.expect(warning.match, timeout=5)
        assert {first.startswith("→"), second.startswith("→")} == {True, False}
        # the next check raises the same key again: de-duplicated, not re-sent
        wait_until(
            lambda: len(query(project, "SELECT id FROM alerts WHERE source = 'sysmon'")) >= 2,
            "a second disk check",
            timeout=10,
        )
        bot.end_input()
        assert bot.wait() == 0
        bot.rest()
    assert len([line for line in bot.seen if warning.match(line)]) == 2
    assert not [line for line in bot.seen if "carol" in line]
    states = query(project, "SELECT state, outcome FROM alerts WHERE source = 'sysmon' ORDER BY id")
    assert json.loads(states[0][1]) == {"state": "delivered", "to": ["me", "bob"]}
    assert {state for state, _ in states[1:]} == {"deduplicated"}
    assert query(project, "SELECT DISTINCT key FROM alerts") == [("disk:/",)]


# --- fallback through apprise ---------------------------------------------------------------------


class Recorder(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.bodies.append(body.decode())  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def http_recorder() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on a free local port; yields (port, bodies POSTed so far)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.bodies  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


# Fault injection from outside lcbot (the child's sitecustomize): the console transport is
# "down" from the start; a folder plugin's `up` command brings it back.
TRANSPORT_DOWN = """\
from lcbot.transports.console import ConsoleTransport

started = []
original = ConsoleTransport.start


async def start_down(self, on_message):
    await original(self, on_message)
    self.set_ready(False)
    started.append(self)


ConsoleTransport.start = start_down
"""

UP = """\
import sitecustomize

from lcbot import hookimpl


@hookimpl
def register_commands(registry):
    @registry.command("up", help="the transport is back")
    async def up(ctx):
        sitecustomize.started[0].set_ready(True)
        return "transport up"
"""


def fallback_project(tmp_path: Path, port: int) -> Path:
    return make_project(
        tmp_path / "bot",
        extra=f"""
        [alerts]
        fallback_after = 0.5
        fallback_urls = ["json://127.0.0.1:{port}/"]
        """,
        plugins={"up": UP},
    )


def wait_for_fallback(bot, bodies: list[str], text: str, timeout: float = 10) -> None:
    """Until a POST containing ``text`` arrives; fails at once if the chat copy is printed."""
    deadline = time.monotonic() + timeout
    while not any(text in body for body in bodies):
        printed = [line for line in bot.poll() if text in line]
        assert not printed, f"sent on the console although the transport is down: {printed}"
        assert time.monotonic() < deadline, f"no fallback POST within {timeout}s"
        time.sleep(0.02)


def test_fallback_posts_critical_alert_once_while_transport_is_down(tmp_path):
    with http_recorder() as (port, bodies), bots() as start:
        project = fallback_project(tmp_path, port)
        bot = start(project, **patched(tmp_path / "down", TRANSPORT_DOWN))
        raised = lcbot(project, "alert", "db down", "--level", "critical")
        assert raised.returncode == 0, raised.stderr
        wait_for_fallback(bot, bodies, "db down")
        (body,) = bodies  # three recipients, one alert text: one notification
        payload = json.loads(body)
        assert payload["message"] == "CRITICAL db down"
        assert payload["title"] == "testbot: critical alert"

        # not repeated: two more fallback checks (one per second) send nothing new
        time.sleep(2.3)
        assert len(bodies) == 1, bodies
        assert bot.poll() == []  # and nothing went to the console meanwhile
        marked = query(project, "SELECT count(*) FROM outbox WHERE fallback_at IS NOT NULL")
        assert marked == [(3,)]

        # the transport is back: the chat copies are still delivered
        bot.send("up")
        expect_all(bot, ["transport up", *lines_for("CRITICAL db down", EVERYONE)])
        bot.end_input()
        assert bot.wait() == 0
        assert len(bodies) == 1
        assert "critical alert(s) sent to the fallback" in bot.stderr


MISSING_APPRISE = "import sys\n\nsys.modules['apprise'] = None  # as if it were not installed\n"


@pytest.mark.parametrize("with_urls", [True, False], ids=["fallback-urls", "no-fallback"])
def test_fallback_urls_without_apprise_exit_2(tmp_path, with_urls):
    extra = '[alerts]\nfallback_urls = ["json://127.0.0.1:9/"]\n' if with_urls else ""
    project = make_project(tmp_path / "bot", {"me": "root"}, extra=extra)
    no_apprise = patched(tmp_path / "no-apprise", MISSING_APPRISE)
    result = lcbot(project, "run", "--transport", "console", **no_apprise)
    if with_urls:
        assert result.returncode == 2, result.stderr
        assert "lcbot[apprise]" in result.stderr
        assert "fallback_urls" in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
    else:  # the same stand-in without fallback URLs runs: apprise is optional
        assert result.returncode == 0, result.stderr
