"""Jobs without a running bot process: name resolution, the hub's checks, and the SDK's
promises (standard library only; never raises into the program; durable alerts)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

from lcbot.commands import CmdType, Command, Registry
from lcbot.jobhub import JobHub
from lcbot.resolve import resolve
from lcbot.users import Pri
from tests.procs import REPO, bots, child_env, make_project


def handler(ctx):
    return "ok"


def registry_with(*commands: Command) -> Registry:
    registry = Registry()
    for command in commands:
        registry.add(command)
    return registry


def test_resolve_job_commands_bare_names_and_choices():
    registry = registry_with(
        Command("interval", handler, CmdType.SET, plugin="sysmon"),
        Command("crawler", handler, plugin="job:crawler"),
        Command("crawler.interval", handler, CmdType.SET, plugin="job:crawler"),
        Command("crawler.pages", handler, plugin="job:crawler"),
        Command("trainer", handler, plugin="job:trainer"),
        Command("trainer.pages", handler, plugin="job:trainer"),
        Command("trainer.lr", handler, CmdType.SET, plugin="job:trainer"),
    )
    command, extra = resolve(registry, "crawler", "interval:30")
    assert (command.name, extra) == ("crawler.interval", "30")
    command, extra = resolve(registry, "crawler", None)
    assert (command.name, extra) == ("crawler", None)
    command, extra = resolve(registry, "lr", "0.1")  # only the trainer has it
    assert (command.name, extra) == ("trainer.lr", "0.1")
    choices = resolve(registry, "pages", None)
    assert choices == "pages is offered by several: crawler pages, trainer pages — say which"
    # a plugin's command and a job's of the same name: both named, the plugin's reachable
    assert "sysmon interval, crawler interval" in resolve(registry, "interval", "30")
    command, extra = resolve(registry, "sysmon", "interval:30")
    assert (command.name, extra) == ("interval", "30")
    assert resolve(registry, "crawler", "nosuch") == (
        "job crawler has no command 'nosuch' — send help"
    )
    assert resolve(registry, "nothing", None) is None


def hub() -> tuple[JobHub, list[tuple]]:
    said: list[tuple] = []
    registry = registry_with(Command("help", handler, plugin="basics"))
    return JobHub(registry, lambda *a: said.append(a), lambda alert: None, lambda cmds: []), said


def hello(name: str = "crawler", **extra) -> dict:
    return {"op": "hello", "name": name, "host": "h", "pid": 1, "started": 1.0, **extra}


def test_the_hub_refuses_bad_names_duplicates_and_takes_over_on_replace():
    async def scenario() -> None:
        jobs, _ = hub()
        sent: list[dict] = []
        assert "invalid job name" in jobs.attach(hello("a.b"), sent.append)
        assert "is a command of plugin basics" in jobs.attach(hello("help"), sent.append)
        bad = hello(commands=[{"name": "stop"}])
        assert "reserved" in jobs.attach(bad, sent.append)
        bad = hello(commands=[{"name": "go", "pri": "god"}])
        assert "pri is root, admin or user" in jobs.attach(bad, sent.append)
        first = jobs.attach(
            hello(commands=[{"name": "go", "kind": "set", "pri": "admin"}]), sent.append
        )
        assert jobs.registry.get("crawler.go").pri is Pri.ADMIN
        refused = jobs.attach(hello(pid=2), sent.append)
        assert "already connected" in refused and "replace=True" in refused
        old: list[dict] = []
        first.send = old.append
        second = jobs.attach(hello(pid=2, replace=True), sent.append)
        assert old == [{"op": "replaced"}] and jobs.sessions["crawler"] is second
        assert jobs.registry.get("crawler.go") is None  # the new one offers no commands

    asyncio.run(scenario())


def test_bad_messages_get_an_error_and_change_nothing():
    async def scenario() -> None:
        jobs, _ = hub()
        replies: list[dict] = []
        session = jobs.attach(hello(status="ok"), replies.append)
        for message in (
            {"op": "nosuch"},
            {"op": "status"},  # no text
            {"op": "progress", "done": "lots"},
            {"op": "commands", "commands": "all"},
            {"op": 7},
        ):
            jobs.handle(session, message)
        errors = [r for r in replies if r["op"] == "error"]
        assert len(errors) == 5, replies
        assert "unknown op 'nosuch'" in errors[0]["error"]
        assert "bad status message" in errors[1]["error"]
        assert session.status == "ok" and session.progress is None

    asyncio.run(scenario())


def test_import_lcbot_job_imports_no_third_party_package():
    code = (
        "import sys; import lcbot.job;"
        "bad = [m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names"
        " and m.split('.')[0] != 'lcbot' and not m.startswith(('_', '__'))];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


NO_BOT = """
import time
from lcbot import job

j = job.connect("crawler")
t = time.monotonic()
for i in range(5000):  # a flood while nobody listens: bounded, never blocks
    j.progress(i, 5000)
    j.metric("loss", 1 / (i + 1), step=i)
j.status("fine")
j.alert("proxy pool exhausted", level="critical", key="proxies")
j.heartbeat(60)
took = time.monotonic() - t
time.sleep(1)  # the alert is written to the bot's database meanwhile
print("took", round(took, 3), "queued", len(j.link._queue))
"""


def test_with_the_bot_stopped_a_job_runs_on_and_its_alert_is_kept(tmp_path):
    folder = make_project(tmp_path / "p", {"me": "root"})
    (folder / "nobot.py").write_text(textwrap.dedent(NO_BOT))
    ran = subprocess.run(
        [sys.executable, "nobot.py"],
        cwd=folder,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    took = float(ran.stdout.split()[1])
    queued = int(ran.stdout.split()[3])
    assert took < 5 and queued <= 1000, ran.stdout  # bounded buffer
    with bots() as start:
        bot = start(folder)
        bot.expect(lambda t: t.startswith("CRITICAL crawler: proxy pool exhausted [host="))
        bot.end_input()
        assert bot.wait() == 0


def test_job_messages_over_the_socket_are_checked(tmp_path):
    import socket

    folder = make_project(tmp_path / "p", {"me": "root"})
    with bots() as start:
        bot = start(folder)
        path = folder / ".lcbot" / "jobs.sock"
        deadline = time.monotonic() + 20
        while not path.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)

        def talk(*lines: bytes) -> list[dict]:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(path))
                for line in lines:
                    s.sendall(line)
                s.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return [json.loads(x) for x in data.splitlines()]

        assert talk(b'{"op": "status", "text": "x"}\n')[0]["op"] == "refused"
        answers = talk(json.dumps(hello()).encode() + b"\n", b"not json\n", b"[1]\n")
        assert [a["op"] for a in answers] == ["welcome", "error", "error"]
        answers = talk(
            json.dumps(hello("big")).encode() + b"\n",
            b'{"op": "x", "t": "' + b"y" * 70000 + b'"}\n',
        )
        assert answers[-1]["op"] == "error" and "too large" in answers[-1]["error"]
        bot.send("jobs")
        bot.expect(lambda t: "crawler on h" in t or "big on h" in t)
        bot.end_input()
        assert bot.wait() == 0
