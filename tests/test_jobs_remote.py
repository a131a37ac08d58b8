"""Remote jobs end to end: real job processes talking to a real ``lcbot run --transport
console`` through the HTTP ingress (``POST /jobs/exchange``) on 127.0.0.1, with the job
token; and a local job killed with -9. Bounded waits only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import INGRESS_TOKEN, INGRESS_TOKEN_ENV
from tests.engine import running_bot
from tests.procs import WAIT, Bot, bots, child_env, lcbot, make_project, wait_until
from tests.test_jobs_e2e import start_job
from tests.wechaty_mock import free_port

JOB_TOKEN = "job-Token_7f3a"
HOST = os.uname().nodename

JOB = """
import json, sys, time
from lcbot import job

name = sys.argv[1]
state = {"interval": 5}
j = job.connect(name)
seen = j.link.on_message

def spy(message):  # what this job got from the bot, one line each
    print("got", json.dumps(message), flush=True)
    seen(message)

j.link.on_message = spy

@j.command("interval", kind="set", pri="admin", help="seconds between polls")
def interval(ctx):
    state["interval"] = int(ctx.value)
    ctx.reply(f"{name} changing the interval")
    return f"{name} interval is now {state['interval']}s"

@j.command("alarm", help="raises an alert")
def alarm(ctx):
    j.alert(f"proxy pool exhausted ({ctx.value})", level="warning", key="proxies")
    return "alerted"

j.status(lambda: f"{name}: interval {state['interval']}s")
while True:
    time.sleep(0.2)
    if j.link.refused:
        print("refused:", j.link.refused, flush=True)
        sys.exit(3)
"""


def project(tmp_path: Path, port: int) -> Path:
    config = f"""
    [ratelimit]
    per_second = 0
    per_minute = 0
    per_recipient_gap = 0

    [ingress]
    enabled = true
    listen = "127.0.0.1:{port}"
    """
    folder = make_project(tmp_path / "p", {"me": "root", "bob": "admin", "carol": "user"}, config)
    (tmp_path / "elsewhere").mkdir()  # the job's folder: no lcbot.toml, no socket
    (tmp_path / "elsewhere" / "job.py").write_text(textwrap.dedent(JOB))
    return folder


def bot_env(job_token: str | None = JOB_TOKEN) -> dict[str, str]:
    env = {INGRESS_TOKEN_ENV: INGRESS_TOKEN}
    if job_token:
        env["LCBOT_JOB_TOKEN"] = job_token
    return env


def start_remote(tmp_path: Path, port: int, name: str, token: str = JOB_TOKEN):
    url = f"http://127.0.0.1:{port}"
    return start_job(tmp_path / "elsewhere", "job.py", name, LCBOT_URL=url, LCBOT_JOB_TOKEN=token)


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.kill()
    out, _ = proc.communicate(timeout=WAIT)
    return out


def listening(bot: Bot) -> None:
    wait_until(lambda: "ingress listening" in bot.stderr, "the ingress listening", WAIT)


@contextlib.contextmanager
def remote_bot(tmp_path: Path, job_token: str | None = JOB_TOKEN) -> Iterator[tuple[Bot, int]]:
    """A console bot whose ingress listens on a free port: ``(bot, port)``; after the block
    its input is ended, it must exit 0 with no traceback and no token in its log."""
    port = free_port()
    with bots() as start:
        bot = start(project(tmp_path, port), **bot_env(job_token))
        listening(bot)
        yield bot, port
        bot.end_input()
        assert bot.wait() == 0
        log = bot.stderr
        assert "Traceback" not in log and "internal error" not in log, log
        assert JOB_TOKEN not in log and INGRESS_TOKEN not in log  # secrets never logged


def post(port: int, path: str, body: Any, token: str | None, raw: bytes | None = None):
    """``(status, JSON answer)`` of a POST to the bot's ingress."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, json.loads(text) if text.startswith(b"{") else text


def exchange(port: int, session: str | None, messages: list, **extra: Any):
    body = {"session": session, "messages": messages, **extra}
    return post(port, "/jobs/exchange", body, JOB_TOKEN)


def hello(name: str, **fields: Any) -> dict[str, Any]:
    return {"op": "hello", "name": name, "host": "far", "pid": 4242, "started": 1.0, **fields}


def until_reply(bot: Bot, text: str, want: str, timeout: float = 30.0) -> None:
    """Send ``text`` every 2 s until ``want`` is printed (a job coming back)."""
    deadline = time.monotonic() + timeout
    while True:
        bot.send(text)
        try:
            bot.expect(want, timeout=2.0)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def test_a_remote_job_offers_commands_status_and_alerts(tmp_path):
    with remote_bot(tmp_path) as (bot, port):
        crawler = start_remote(tmp_path, port, "crawler")
        try:
            bot.expect(lambda t: t.startswith(f"crawler on {HOST} connected (pid {crawler.pid})"))
            bot.send("crawler interval:30")
            bot.expect("crawler changing the interval")
            bot.expect("crawler interval is now 30s")
            bot.send("crawler")
            bot.expect(lambda t: t.startswith("status: ") and "crawler: interval 30s" in t)
            bot.send("crawler alarm:eu")
            bot.expect("alerted")
            bot.expect(lambda t: "crawler: proxy pool exhausted (eu)" in t)
        finally:
            out = stop(crawler)
        assert "refused" not in out, out


def test_each_token_opens_only_its_own_routes(tmp_path):
    with remote_bot(tmp_path) as (bot, port):
        status, _ = post(port, "/jobs/exchange", {"messages": [hello("x")]}, INGRESS_TOKEN)
        assert status == 401  # the alert token is no job token
        assert post(port, "/jobs/exchange", {"messages": [hello("x")]}, None)[0] == 401
        assert post(port, "/alert", {"text": "hi"}, JOB_TOKEN)[0] == 401  # nor the reverse
        assert post(port, "/alert", {"text": "hi"}, INGRESS_TOKEN)[0] == 202
        wrong = start_remote(tmp_path, port, "crawler", token="not-the-token")
        out, _ = wrong.communicate(timeout=WAIT)
        assert wrong.returncode == 3 and "refused: the bot refused this job (401)" in out, out
        bot.send("crawler interval:2")
        bot.expect("unknown command 'crawler' — send help")  # never attached


def test_without_a_job_token_remote_jobs_are_off_and_equal_tokens_are_refused(tmp_path):
    with remote_bot(tmp_path, job_token=None) as (_, port):
        status, answer = exchange(port, None, [hello("x")])
        assert status == 403
        assert answer == {
            "error": "remote jobs are off: the bot was started without $LCBOT_JOB_TOKEN"
        }
        job = start_remote(tmp_path, port, "crawler")
        out, _ = job.communicate(timeout=WAIT)
        assert job.returncode == 3 and "remote jobs are off" in out, out
    same = lcbot(
        tmp_path / "p", "run", "--transport", "console", **bot_env(job_token=INGRESS_TOKEN)
    )
    assert same.returncode == 2, same
    assert "hold the same token: give remote jobs a token of their own" in same.stderr
    assert "Traceback" not in same.stderr


def test_a_remote_job_sees_only_its_own_messages(tmp_path):
    with remote_bot(tmp_path) as (bot, port):
        crawler = start_remote(tmp_path, port, "crawler")
        trainer = start_remote(tmp_path, port, "trainer")
        try:
            for name in ("crawler", "trainer"):
                wait_until(
                    lambda n=name: any(
                        t.startswith(f"{n} on {HOST} connected") for t in [*bot.seen, *bot.poll()]
                    ),
                    f"{name} connected",
                )
            status, spy = exchange(port, None, [hello("spy")])  # a third, raw client
            assert status == 200 and [m["op"] for m in spy["messages"]] == ["welcome"]
            bot.send("crawler interval:3")
            bot.expect("crawler interval is now 3s")
            bot.send("trainer interval:4")
            bot.expect("trainer interval is now 4s")
            status, seen = exchange(port, spy["session"], [], poll=False)
            assert (status, seen["messages"]) == (200, [])
            bot.send("spy")  # the bot asks the spy for its status: its only message
            bot.expect(lambda t: t.startswith("spy on far"))
            status, seen = exchange(port, spy["session"], [], ack=spy["messages"][-1]["seq"])
            assert status == 200 and [m["op"] for m in seen["messages"]] == ["status?"], seen
            assert exchange(port, "not-a-session", [])[1] == {
                "session": None,
                "messages": [],
                "gone": True,
            }
        finally:
            crawler_out, trainer_out = stop(crawler), stop(trainer)
        runs = re.compile(r'"op": "run".*"command": "(\w+)".*"extra": "(\d)"')
        assert [m.group(2) for m in runs.finditer(crawler_out)] == ["3"], crawler_out
        assert [m.group(2) for m in runs.finditer(trainer_out)] == ["4"], trainer_out
        assert "trainer" not in crawler_out and "crawler" not in trainer_out


def test_bad_exchanges_get_a_clear_400_and_change_nothing(tmp_path):
    big = {"op": "output", "line": "x" * 70_000}
    with remote_bot(tmp_path) as (bot, port):
        status, raw = exchange(port, None, [hello("raw", status="initial")])
        assert status == 200
        session = raw["session"]
        cases = [
            (b"{not json", "malformed JSON"),
            (json.dumps([1]).encode(), "the body must be a JSON object"),
            (json.dumps({"session": 5}).encode(), "session: expected"),
            (json.dumps({"session": session, "messages": {}}).encode(), "messages: expected"),
            (
                json.dumps({"session": session, "messages": [{"op": "status"}] * 101}).encode(),
                "messages: at most 100 per exchange, got 101",
            ),
            (
                json.dumps({"session": session, "messages": [{"op": "status", "text": "x"}, 7]}),
                "messages[1]: expected a JSON object with an op",
            ),
            (
                json.dumps({"session": session, "messages": [{"op": "status", "text": "x"}, big]}),
                "messages[1]: 70028 bytes, more than 65536",
            ),
            (json.dumps({"session": session, "poll": "yes"}), "poll: expected true or false"),
            (json.dumps({"session": session, "ack": -1}), "ack: expected a whole number"),
            (json.dumps({"session": session, "wat": 1}), "unknown field 'wat'"),
            (json.dumps({"messages": [{"op": "status"}]}), "messages[0]: a new session starts"),
        ]
        for body, error in cases:
            data = body if isinstance(body, bytes) else body.encode()
            status, answer = post(port, "/jobs/exchange", None, JOB_TOKEN, raw=data)
            assert status == 400 and error in answer["error"], (body[:80], status, answer)
        status, _ = post(port, "/jobs/exchange", None, JOB_TOKEN, raw=b" " * (1024 * 1024 + 1))
        assert status == 413
        bot.send("raw")
        bot.expect("status: initial")  # none of the bad batches changed it
        status, answer = exchange(port, session, [{"op": "nope"}, {"op": "progress", "done": "x"}])
        assert status == 200
        status, answer = exchange(port, session, [], ack=raw["messages"][-1]["seq"])
        errors = [m["error"] for m in answer["messages"] if m["op"] == "error"]
        assert errors[0] == "unknown op 'nope'" and errors[1].startswith("bad progress message")


def test_a_remote_job_comes_back_after_the_bot_restarts(tmp_path):
    port = free_port()
    folder = project(tmp_path, port)
    crawler = start_remote(tmp_path, port, "crawler")
    try:
        with bots() as start:
            first = start(folder, **bot_env())
            first.expect(lambda t: t.startswith("crawler on ") and "connected" in t, 30)
            first.send("crawler interval:9")
            first.expect("crawler interval is now 9s")
            first.end_input()
            assert first.wait() == 0
            assert crawler.poll() is None  # the job never noticed
            second = start(folder, **bot_env())
            listening(second)
            until_reply(second, "crawler interval:11", "crawler interval is now 11s")
            second.end_input()
            assert second.wait() == 0
            assert not [t for t in second.seen if "connected (pid" in t]  # told once
    finally:
        out = stop(crawler)
    assert "refused" not in out, out


def test_a_job_killed_with_9_is_told_gone_and_its_commands_disappear(tmp_path):
    folder = project(tmp_path, free_port())
    (folder / "job.py").write_text(textwrap.dedent(JOB))
    with bots() as start:
        bot = start(folder)
        local = subprocess.Popen(
            [sys.executable, "job.py", "crawler"],
            cwd=folder,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            bot.expect(lambda t: t.startswith("crawler on ") and "connected" in t)
            bot.send("crawler interval:2")
            bot.expect("crawler interval is now 2s")
            os.kill(local.pid, signal.SIGKILL)
            local.wait(WAIT)
            bot.expect(lambda t: t.startswith(f"crawler on {HOST} is gone after"))
            bot.send("crawler interval:1")
            bot.expect(lambda t: "crawler" in t and ("unknown" in t or "not connected" in t))
            bot.send("interval:1")
            bot.expect("unknown command 'interval' — send help")
        finally:
            if local.poll() is None:
                local.kill()
        bot.end_input()
        assert bot.wait() == 0


def test_a_remote_job_killed_with_9_is_detached_when_idle_and_told_gone(tmp_path, monkeypatch):
    """The in-process bot's idle limit is shortened to 1 s (60 s in a real one); the job is
    a real process over real HTTP."""
    monkeypatch.setenv("LCBOT_JOB_TOKEN", JOB_TOKEN)
    config = {"ingress": {"enabled": True, "listen": "127.0.0.1:0"}}

    async def scenario() -> None:
        async with running_bot(tmp_path / "bot", config=config) as bot:
            assert bot.app.ingress is not None and bot.app.ingress.jobs is not None
            bot.app.ingress.jobs.idle = 1.0
            (tmp_path / "elsewhere").mkdir()
            (tmp_path / "elsewhere" / "job.py").write_text(textwrap.dedent(JOB))
            job = start_remote(tmp_path, bot.app.ingress.port, "crawler")
            try:
                await until(lambda: "crawler" in bot.app.jobs.sessions, "attached")
                await until(lambda: bot.app.ingress.jobs.remotes, "a session")
                os.kill(job.pid, signal.SIGKILL)
                job.wait(WAIT)
                await until(lambda: "crawler" not in bot.app.jobs.sessions, "detached, gone")

                def told_gone() -> bool:  # the notice goes through the outbox: wait for it
                    return any(" is gone after " in t for t in bot.to("root1"))

                await until(told_gone, "root told the job is gone")
                gone = [t for t in bot.to("root1") if t.startswith("crawler on ")]
                assert " is gone after " in gone[-1], bot.sent
                assert not bot.app.ingress.jobs.remotes  # its session id is forgotten
                assert bot.app.registry.get("crawler.interval") is None
            finally:
                if job.poll() is None:
                    job.kill()
                job.communicate(timeout=WAIT)

    asyncio.run(scenario())


async def until(condition: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


def test_the_remote_sdk_imports_only_the_standard_library(tmp_path):
    code = """
    import sys, time
    from lcbot import job
    j = job.connect("x")  # LCBOT_URL: a port nobody listens on
    j.status("s"); j.alert("a"); j.progress(1, 2)
    time.sleep(1.0)
    names = {m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names)
    names = {n for n in names if not n.startswith("_")}  # __main__, site's import hooks
    ours = sorted(m for m in sys.modules if m.startswith("lcbot"))
    print(sorted(names), ours)
    """
    (tmp_path / "sdk.py").write_text(textwrap.dedent(code))
    url = f"http://127.0.0.1:{free_port()}"
    proc = start_job(tmp_path, "sdk.py", LCBOT_URL=url, LCBOT_JOB_TOKEN=JOB_TOKEN)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert out.strip() == "['lcbot'] ['lcbot', 'lcbot.job', 'lcbot.joblink', 'lcbot.jobremote']"
