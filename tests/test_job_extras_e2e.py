"""``@job.notify``, ``from lcbot.job import tqdm`` and progress milestones, end to end: real
job processes next to a real ``lcbot run --transport console``. Bounded waits only."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.procs import bots, child_env, make_project

HOST = socket.gethostname()  # a job's alerts carry the label host
CONFIG = """
[ratelimit]
per_second = 0
per_minute = 0
per_recipient_gap = 0
"""

NOTIFIED = """
import sys, time
from lcbot import job

@job.notify(name="train")
def main(fail):
    time.sleep(0.5)
    if fail:
        raise ValueError("loss is NaN")
    return 42

print("result", main("--fail" in sys.argv), flush=True)
"""

TQDM = """
import time
from lcbot import job
from lcbot.job import tqdm

j = job.connect("train")
for step in tqdm(range(400), desc="epoch 1"):
    time.sleep(0.05)
"""

MILESTONES = """
import os, time
from lcbot import job

j = job.connect("crawl", milestones=25)
while not j.link.connected.is_set():
    time.sleep(0.05)
for done in range(0, 101, 5):
    j.progress(done, 100)
    time.sleep(0.02)
while not os.path.exists("go"):
    time.sleep(0.05)
"""


def project(tmp_path: Path) -> Path:
    folder = make_project(tmp_path / "p", {"me": "root", "bob": "admin"}, CONFIG)
    for name, source in {"notified.py": NOTIFIED, "bar.py": TQDM, "ms.py": MILESTONES}.items():
        (folder / name).write_text(textwrap.dedent(source))
    return folder


def run(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def start(folder: Path, script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, script], cwd=folder, env=child_env(), stdout=subprocess.PIPE, text=True
    )


def test_notify_tells_start_finish_and_crash_and_only_rank_zero_does(tmp_path):
    folder = project(tmp_path)
    with bots() as begin:
        bot = begin(folder)
        bot.send("whoami")
        bot.expect("me (root)")
        done = run(folder, "notified.py")
        assert (done.returncode, done.stdout) == (0, "result 42\n"), done.stderr
        bot.expect(lambda t: t.startswith("train on ") and "connected (pid" in t)  # the start
        bot.expect(
            lambda t: (
                t.startswith("INFO train finished in ") and t.endswith("s [host=" + HOST + "]")
            )
        )
        crashed = run(folder, "notified.py", "--fail")
        assert crashed.returncode == 1
        assert "ValueError: loss is NaN" in crashed.stderr  # re-raised: the program crashes
        line = bot.expect(lambda t: t.startswith("WARNING train crashed after "))
        assert line.endswith(": ValueError: loss is NaN [host=" + HOST + "]"), line
        bot.expect(lambda t: t.startswith("Traceback") or "File " in t)  # the tail follows
        for rank in ({"RANK": "1"}, {"LOCAL_RANK": "3"}):
            silent = run(folder, "notified.py", **rank)
            assert silent.stdout == "result 42\n"
        bot.send("whoami")  # the silent ranks told nothing before this answer
        bot.expect("me (root)")
        bot.end_input()
        assert bot.wait() == 0
        assert not [t for t in bot.seen if " is gone after " in t or "crashed: " in t]
        told = [t for t in bot.seen if "train finished" in t or "train crashed" in t]
        assert len(told) == 3, told  # once per run: info to me, the warning to me and bob


def test_tqdm_reports_progress_to_the_job(tmp_path):
    folder = project(tmp_path)
    with bots() as begin:
        bot = begin(folder)
        proc = start(folder, "bar.py")
        try:
            bot.expect(lambda t: t.startswith("train on ") and "connected" in t)
            for _ in range(100):
                bot.send("jobs")
                line = bot.expect(lambda t: t.startswith("train on "))
                if "/400)" in line and "% (0/400)" not in line:
                    break
            assert "] " in line and "/400) " in line and line.endswith(" — epoch 1"), line
        finally:
            proc.kill()
            proc.wait(20)
        bot.end_input()
        bot.wait()


def test_tqdm_without_tqdm_says_how_to_get_it(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "tqdm.py").write_text("raise ImportError('no tqdm here')\n")
    code = "from lcbot.job import tqdm"
    done = run(tmp_path, "-c", code, PYTHONPATH=str(blocker))
    assert done.returncode == 1
    assert "ImportError: lcbot.job.tqdm needs tqdm: pip install tqdm" in done.stderr


def test_milestones_are_told_every_25_percent(tmp_path):
    folder = project(tmp_path)
    with bots() as begin:
        bot = begin(folder)
        proc = start(folder, "ms.py")
        try:
            for share in ("25%", "50%", "75%", "100%"):
                line = bot.expect(lambda t, s=share: t.startswith("crawl: [") and f"] {s} " in t)
                assert line.endswith(f"({int(share[:-1])}/100)") or " ETA " in line, line
            (folder / "go").write_text("")
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(20)
        bot.end_input()
        assert bot.wait() == 0
        told = [t for t in bot.seen if t.startswith("crawl: [")]
        assert len(told) == 4, told  # once each, to me (bob is told too: "→ bob: …")


def test_the_sdk_and_notify_import_only_the_standard_library(tmp_path):
    probe = (
        "import sys; before = set(sys.modules)  # site start-up: the editable install's finder\n"
        "from lcbot import job; import lcbot.jobnotify, lcbot.jobtqdm\n"
        "job.notify(name='x')\n"
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}"
        " - set(sys.stdlib_module_names)"
        " - {'lcbot', '__main__'}))\n"
    )
    done = run(tmp_path, "-c", probe)
    assert done.stdout == "[]\n", done.stderr
