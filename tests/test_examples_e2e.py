"""The programs in ``examples/`` run against a real console bot and answer their commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.procs import REPO, bots, child_env, make_project

CONFIG = """
[ratelimit]
per_second = 0
per_minute = 0
per_recipient_gap = 0
"""


def start(folder: Path, name: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "examples" / name), *args],
        cwd=folder,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_crawler_example_is_steered_from_chat(tmp_path):
    folder = make_project(tmp_path / "p", {"me": "root"}, CONFIG)
    with bots() as begin:
        bot = begin(folder)
        crawler = start(folder, "crawler.py")
        try:
            bot.expect(lambda t: t.startswith("crawler on ") and "connected" in t)
            bot.send("crawler interval:0.1")
            bot.expect("interval is now 0.1s")
            bot.send("crawler interval:fast")
            bot.expect("crawler.interval failed: interval needs a number of seconds, not 'fast'")
            bot.send("crawler pause")
            bot.expect(lambda t: t.startswith("paused after ") and t.endswith(" pages"))
            bot.send("crawler")
            bot.expect(lambda t: t.startswith("status: paused, ") and "every 0.1s" in t)
            bot.send("crawler resume")
            bot.expect("resumed")
            bot.send("crawler tail 1")
            bot.expect(lambda t: t.startswith("fetched page "))
        finally:
            crawler.terminate()
            crawler.wait(20)
        bot.end_input()
        assert bot.wait() == 0


def test_the_training_example_reports_progress_and_ends(tmp_path):
    folder = make_project(tmp_path / "p", {"me": "root"}, CONFIG)
    with bots() as begin:
        bot = begin(folder)
        train = start(folder, "train.py", "--epochs", "2", "--steps", "30")
        try:
            bot.expect(lambda t: t.startswith("train on ") and "connected" in t)
            bot.send("train lr:0.2")
            bot.expect("lr is now 0.2")
            bot.send("train")
            bot.expect(lambda t: t.startswith("progress: [") and "/30)" in t and "epoch " in t)
            out, err = train.communicate(timeout=30)
            assert train.returncode == 0, err
            assert out.startswith("final loss "), out
            assert "epoch 2/2: 100%" in err  # tqdm's own bar, unchanged
            bot.expect(lambda t: t.startswith("train on ") and " finished after " in t)
        finally:
            if train.poll() is None:
                train.kill()
            train.wait(20)
        bot.end_input()
        assert bot.wait() == 0
