"""Jobs end to end: real job processes (``lcbot.job``) and a real ``lcbot run`` on the
console, talking through the bot's local socket. Bounded waits only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.procs import bots, child_env, make_project, wait_until

CRAWLER = """
import sys, time
from lcbot import job

state = {"interval": 5, "pages": 0}
j = job.connect("crawler")

@j.command("interval", kind="set", pri="admin", help="seconds between polls")
def interval(ctx):
    state["interval"] = int(ctx.value)
    ctx.reply("changing the interval")
    return f"interval is now {state['interval']}s"

@j.command("boom", help="fails")
def boom(ctx):
    raise RuntimeError("no proxies left")

j.status(lambda: f"{state['pages']} pages, interval {state['interval']}s")
print("started", flush=True)
while True:
    state["pages"] += 1
    j.progress(state["pages"], 1000, note=f"page {state['pages']}")
    j.output(f"fetched page {state['pages']}")
    time.sleep(0.05)
"""

CRASHER = """
import time
from lcbot import job
j = job.connect("trainer")
time.sleep(1.0)
raise ValueError("loss is NaN")
"""

CONFIG = """
[ratelimit]
per_second = 0
per_minute = 0
per_recipient_gap = 0
"""


def project(tmp_path: Path) -> Path:
    folder = make_project(tmp_path / "p", {"me": "root", "bob": "admin", "carol": "user"}, CONFIG)
    (folder / "crawler.py").write_text(textwrap.dedent(CRAWLER))
    (folder / "crasher.py").write_text(textwrap.dedent(CRASHER))
    (folder / "sysmon_like.py").write_text("")
    return folder


def start_job(folder: Path, script: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """``python SCRIPT ARGS`` in ``folder`` (``env``: extra variables), output piped."""
    return subprocess.Popen(
        [sys.executable, script, *args],
        cwd=folder,
        env=child_env(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_job(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_a_job_offers_commands_status_and_progress(tmp_path):
    folder = project(tmp_path)
    with bots() as start:
        bot = start(folder)
        crawler = start_job(folder, "crawler.py")
        try:
            bot.expect("crawler on " + os.uname().nodename + f" connected (pid {crawler.pid})")
            sock = folder / ".lcbot" / "jobs.sock"
            assert stat.S_IMODE(sock.stat().st_mode) == 0o600
            bot.send("jobs")
            line = bot.expect(lambda t: t.startswith("crawler on "))
            assert f"(pid {crawler.pid}), up " in line
            bot.send("crawler")
            bot.expect(lambda t: t.startswith("status: ") and "pages, interval 5s" in t)
            bot.expect(lambda t: t.startswith("progress: [") and "/1000)" in t)
            bot.send("crawler interval:30")
            bot.expect("changing the interval")
            bot.expect("interval is now 30s")
            bot.expect("→ bob: me set crawler.interval: 30")  # a SET notice, as for plugins
            bot.send("interval:7")  # the bare name: only the crawler offers it
            bot.expect("interval is now 7s")
            bot.send("crawler boom")
            bot.expect(lambda t: t.startswith("crawler.boom failed: RuntimeError: no proxies left"))
            bot.send("crawler tail 3")
            bot.expect(lambda t: t.startswith("fetched page "))
            bot.send("help")
            bot.expect("job crawler:")
            bot.expect(lambda t: "crawler interval:VALUE — seconds between polls" in t)
            bot.send("crawler nosuch")
            bot.expect("job crawler has no command 'nosuch' — send help")
        finally:
            stop_job(crawler)
        bot.expect(lambda t: t.startswith(f"crawler on {os.uname().nodename} is gone after"))
        bot.end_input()
        assert bot.wait() == 0


def test_privileges_and_set_notices_apply_to_job_commands(tmp_path):
    folder = project(tmp_path)
    with bots() as start:
        bot = start(folder, "--as", "carol")
        crawler = start_job(folder, "crawler.py")
        try:
            wait_until(lambda: (folder / ".lcbot" / "jobs.sock").exists(), "the socket", 20)
            time.sleep(1)
            bot.send("crawler interval:30")
            bot.expect("not allowed: crawler.interval")
            bot.send("crawler stop")
            bot.expect("not allowed: crawler.stop")
            bot.send("crawler")
            bot.expect(lambda t: t.startswith("status: "))
        finally:
            stop_job(crawler)
        bot.end_input()
        bot.wait()


def test_stop_asks_to_confirm_and_a_crash_is_told_with_its_tail(tmp_path):
    folder = project(tmp_path)
    with bots() as start:
        bot = start(folder)
        crawler = start_job(folder, "crawler.py")
        crasher = start_job(folder, "crasher.py")
        try:
            bot.expect(lambda t: t.startswith("crawler on ") and "connected" in t)
            bot.expect(lambda t: t.startswith("trainer crashed: ValueError: loss is NaN"))
            bot.send("crawler stop")
            bot.expect(lambda t: t.startswith("send yes within"))
            bot.send("yes")
            bot.expect("asked crawler to stop")
            assert crawler.wait(10) != 0  # KeyboardInterrupt in its main thread
            bot.expect(lambda t: t.startswith("crawler on ") and " stopped after " in t)
        finally:
            stop_job(crawler)
            stop_job(crasher)
        bot.end_input()
        assert bot.wait() == 0


def test_a_second_job_of_that_name_is_refused_unless_it_replaces(tmp_path):
    folder = project(tmp_path)
    (folder / "second.py").write_text(
        textwrap.dedent(
            """
            import sys, time
            from lcbot import job
            j = job.connect("crawler", replace="--replace" in sys.argv)
            for _ in range(100):
                if j.link.refused or j.link.connected.is_set():
                    break
                time.sleep(0.05)
            print("refused:", j.link.refused, flush=True)
            time.sleep(5 if j.link.connected.is_set() else 0)
            """
        )
    )
    with bots() as start:
        bot = start(folder)
        crawler = start_job(folder, "crawler.py")
        try:
            bot.expect(lambda t: t.startswith("crawler on ") and "connected" in t)
            second = start_job(folder, "second.py")
            out, _ = second.communicate(timeout=20)
            assert "a job named crawler is already connected" in out, out
            third = subprocess.Popen(
                [sys.executable, "second.py", "--replace"],
                cwd=folder,
                env=child_env(),
                stdout=subprocess.PIPE,
                text=True,
            )
            bot.expect(lambda t: t.startswith("crawler on ") and f"(pid {third.pid})" in t)
            third.wait(20)
        finally:
            stop_job(crawler)
        bot.end_input()
        bot.wait()


def test_a_job_survives_the_bot_restarting(tmp_path):
    folder = project(tmp_path)
    crawler = start_job(folder, "crawler.py")
    try:
        with bots() as start:
            first = start(folder)
            first.expect(lambda t: t.startswith("crawler on ") and "connected" in t)
            first.end_input()
            assert first.wait() == 0
            assert crawler.poll() is None  # the job never noticed
            second = start(folder)
            time.sleep(1.5)  # it reconnects with backoff (0.2 s doubling)
            second.send("crawler interval:11")
            second.expect("interval is now 11s")
            second.end_input()
            assert second.wait() == 0
            assert not [t for t in second.seen if "connected (pid" in t]  # told once
    finally:
        stop_job(crawler)


TRAINER = """
import time
from lcbot import job

j = job.connect("trainer")
for step in range(20):
    j.metric("loss", 1.0 / (step + 1), step=step)
    j.heartbeat(every=1)
    time.sleep(0.05)
print("beating stopped", flush=True)
time.sleep(30)
"""


def test_job_metrics_are_plotted_and_a_late_job_heartbeat_alerts(tmp_path):
    folder = project(tmp_path)
    (folder / "trainer.py").write_text(textwrap.dedent(TRAINER))
    with bots() as start:
        bot = start(folder)
        trainer = start_job(folder, "trainer.py")
        try:
            bot.expect(lambda t: t.startswith("trainer on ") and "connected" in t)
            bot.expect(lambda t: t.startswith("WARNING trainer: no heartbeat for "), timeout=30)
            bot.send("heartbeats")
            bot.expect(lambda t: t.startswith("trainer") and "LATE" in t)
            bot.send("plot trainer loss")
            bot.expect(lambda t: t.startswith("[file for me] trainer-loss.png") or "▁" in t)
        finally:
            stop_job(trainer)
        bot.end_input()
        assert bot.wait() == 0
