"""``lcbot watch`` end to end: real ``lcbot watch -- python …`` processes next to a real
``lcbot run --transport console``. Bounded waits only."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.procs import bots, child_env, make_project, query, wait_until

CONFIG = """
[ratelimit]
per_second = 0
per_minute = 0
per_recipient_gap = 0
"""

HOST_LABEL = re.compile(r" \[host=[^ \]]+\]$")  # a job's alert carries its host
OUTPUT = ("epoch 1 loss 0.9", "epoch 2 loss 0.5", "warning: slow disk")  # train.py's
SCRIPTS = {
    # waits for the file `go` (at most 30 s), then exits with the status in it
    "train.py": """
        import os, sys, time
        print("epoch 1 loss 0.9", flush=True)
        print("epoch 2 loss 0.5", flush=True)
        sys.stderr.write("warning: slow disk\\n")
        for _ in range(3000):
            if os.path.exists("go"):
                break
            time.sleep(0.01)
        status = int(open("go").read() or 0)
        print(f"exiting with {status}", flush=True)
        sys.exit(status)
    """,
    # ignores SIGTERM: `stop` needs SIGKILL
    "stubborn.py": """
        import signal, time
        signal.signal(signal.SIGTERM, lambda n, f: print("ignoring SIGTERM", flush=True))
        print("ready", flush=True)
        for _ in range(3000):
            time.sleep(0.01)
    """,
    # says which signals reach it; SIGTERM ends it with status 7
    "signals.py": """
        import signal, sys, time
        def got(number, frame):
            print(f"got {signal.Signals(number).name}", flush=True)
            if number == signal.SIGTERM:
                sys.exit(7)
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"):
            signal.signal(getattr(signal, name), got)
        print("ready", flush=True)
        for _ in range(3000):
            time.sleep(0.01)
    """,
}


def project(tmp_path: Path) -> Path:
    folder = make_project(tmp_path / "p", {"me": "root", "bob": "admin", "carol": "user"}, CONFIG)
    for name, source in SCRIPTS.items():
        (folder / name).write_text(textwrap.dedent(source))
    return folder


def watch(folder: Path, *args: str, **popen) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lcbot", "watch", *args],
        cwd=folder,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


def watched(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "lcbot", "watch", *args],
        cwd=folder,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )


def read_until(stream, text: bytes) -> bytes:
    """Bytes of ``stream`` up to and including ``text`` (the child said it is ready)."""
    seen = b""
    while text not in seen:
        chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(1)
        assert chunk, f"stream closed before {text!r}: {seen!r}"
        seen += chunk
    return seen


def finish(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(20)


# --- the program is unchanged -------------------------------------------------------------


def test_output_passes_through_byte_for_byte_and_the_status_is_cmds(tmp_path):
    folder = project(tmp_path)
    code = (
        "import sys; sys.stdout.buffer.write(b'line 1\\n\\xff\\x00 raw\\r\\nno newline');"
        " sys.stderr.buffer.write(b'err \\xe4\\xb8\\xad'); sys.exit(3)"
    )
    done = watched(folder, "--", sys.executable, "-c", code)
    assert done.stdout == b"line 1\n\xff\x00 raw\r\nno newline"
    assert done.stderr == b"err \xe4\xb8\xad"
    assert done.returncode == 3
    ok = watched(folder, sys.executable, "-c", "print('fine')")  # no `--` needed
    assert (ok.returncode, ok.stdout) == (0, b"fine\n")
    killed = watched(folder, "--", sys.executable, "-c", "import os; os.kill(os.getpid(), 9)")
    assert killed.returncode == 128 + 9
    missing = watched(folder, "--", "no-such-program-here")
    assert missing.returncode == 127
    assert missing.stderr.decode().strip().splitlines() == [
        "lcbot watch: cannot run no-such-program-here: No such file or directory"
    ]
    bad = watched(folder, "--name", "a.b", "--", sys.executable, "-c", "")
    assert bad.returncode == 2
    assert b"--name 'a.b': 1-32 characters, no spaces, dots or colons" in bad.stderr


def test_signals_sent_to_watch_reach_the_program(tmp_path):
    folder = project(tmp_path)
    proc = watch(folder, "--", sys.executable, "signals.py")
    try:
        assert proc.stdout is not None
        read_until(proc.stdout, b"ready\n")
        for name in ("SIGUSR1", "SIGHUP", "SIGINT", "SIGWINCH"):
            proc.send_signal(getattr(signal, name))
            assert read_until(proc.stdout, b"\n") == f"got {name}\n".encode()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 7  # CMD's own status: it handled SIGTERM
        assert proc.stdout.read() == b"got SIGTERM\n"
    finally:
        finish(proc)


def test_job_names_come_from_the_program():
    from lcbot.watch import job_name

    assert job_name(["python", "-u", "scripts/train.py", "--lr", "3"]) == ("train.py", "train")
    assert job_name(["python3.11", "-m", "pkg.trainer"]) == ("trainer", "trainer")
    assert job_name(["./run.v2.sh"]) == ("run.v2.sh", "run-v2")
    assert job_name(["/usr/bin/rsync", "-a", "x", "y"]) == ("rsync", "rsync")
    assert job_name(["python", "-c", "print(1)"]) == ("python", "python")


# --- in chat ---------------------------------------------------------------------------------


def test_tail_and_the_finished_and_failed_alerts(tmp_path):
    folder = project(tmp_path)
    with bots() as start:
        bot = start(folder)
        proc = watch(folder, "--", sys.executable, "-u", "train.py")
        try:
            bot.expect(lambda t: t.startswith("train on ") and "connected" in t)
            wait_until(lambda: _tail_has(bot, "warning: slow disk"), "the tail")
            (folder / "go").write_text("0")
            assert proc.wait(20) == 0
            bot.expect(
                lambda t: (
                    t.startswith("INFO train.py finished in ")
                    and re.search(r"s \(exit 0\) \[host=[^ ]+\]$", t)
                )
            )
            (folder / "go").write_text("1")
            failed = watch(folder, "--", sys.executable, "train.py")
            assert failed.wait(20) == 1
            line = bot.expect(lambda t: t.startswith("WARNING train.py failed after "))
            _, _, first_line = line.partition(" (exit 1): ")
            first_line = HOST_LABEL.sub("", first_line)
            tail = {first_line} | {bot.expect(lambda t: True) for _ in range(3)}
            assert tail == {*OUTPUT, "exiting with 1"}  # the output's tail, either stream first
        finally:
            finish(proc)
        bot.end_input()
        assert bot.wait() == 0
        assert not [t for t in bot.seen if " finished after " in t or " is gone after " in t]
        assert not [t for t in bot.seen if t.startswith("train: ")]  # named once, not twice


def _tail_has(bot, text: str) -> bool:
    bot.send("train tail 5")
    lines = []
    bot.expect(
        lambda t: lines.append(t) or t in (text, "exiting with 0", "no output from train yet")
    )
    return lines[-1] == text


def test_stop_asks_then_sends_sigterm_and_sigkill_after_the_grace(tmp_path):
    folder = project(tmp_path)
    with bots() as start:
        bot = start(folder)
        proc = watch(folder, "--name", "slow", "--grace", "1", "--", sys.executable, "stubborn.py")
        try:
            bot.expect(lambda t: t.startswith("slow on ") and "connected" in t)
            bot.send("slow stop")
            bot.expect(lambda t: t.startswith("send yes within"))
            bot.send("yes")
            bot.expect("asked slow to stop")
            assert proc.wait(20) == 128 + signal.SIGKILL
            assert proc.stdout is not None
            assert proc.stdout.read() == b"ready\nignoring SIGTERM\n"
            bot.expect(lambda t: t.startswith("INFO slow: stubborn.py stopped after "))
        finally:
            finish(proc)
        bot.end_input()
        assert bot.wait() == 0


def test_the_alert_waits_for_a_bot_that_stopped_during_the_run(tmp_path):
    folder = project(tmp_path)
    with bots() as start:
        first = start(folder)
        proc = watch(folder, "--", sys.executable, "train.py")
        try:
            first.expect(lambda t: t.startswith("train on ") and "connected" in t)
            first.end_input()
            assert first.wait() == 0
            (folder / "go").write_text("2")
            assert proc.wait(20) == 2  # the program ran on
            assert proc.stdout is not None
            assert proc.stdout.read().endswith(b"exiting with 2\n")
        finally:
            finish(proc)
        (state,) = query(folder, "SELECT state FROM alerts WHERE text LIKE 'train.py failed%'")
        assert state == ("new",)
        second = start(folder)
        line = second.expect(lambda t: t.startswith("WARNING train.py failed after "))
        _, _, first_line = line.partition(" (exit 2): ")
        first_line = HOST_LABEL.sub("", first_line)
        tail = {first_line} | {second.expect(lambda t: True) for _ in range(3)}
        assert tail == {*OUTPUT, "exiting with 2"}  # stdout and stderr: in either order
        second.end_input()
        assert second.wait() == 0


def test_without_a_bot_configured_the_program_just_runs(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "lcbot", "watch", "--", sys.executable, "-c", "print('alone')"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, b"alone\n")
    assert b"running without the bot" in done.stderr
    assert os.listdir(tmp_path) == []  # no data dir made
