"""End to end: a plugin records metrics in a real ``lcbot run --transport console``; ``plot``
prints the chart's file line (a real PNG), or a sparkline where matplotlib cannot be
imported; the points are in the database file and plotted again after a restart."""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib import image

from lcbot.charts import BARS, NO_CHARTS, WIDTH
from tests.procs import make_project, patched, query, run_console

PLUGIN = """
import sys
import time

from lcbot import hookimpl


@hookimpl
def lcbot_startup(bot):
    now = time.time()
    for i in range(30):  # one point a minute for half an hour, falling
        bot.metric("loss", 1 / (i + 1), step=100 * i, at=now - (30 - i) * 60)
    bot.metric("load", 0.5, source="host")
    print(f"matplotlib imported: {'matplotlib' in sys.modules}", file=sys.stderr)
"""
FILE_LINE = re.compile(r"^\[file for me\] (.+) \((\d+) bytes\): (.+)$")
MISSING_MATPLOTLIB = "import sys\n\nsys.modules['matplotlib'] = None  # as if not installed\n"


def project(folder: Path) -> Path:
    return make_project(folder, {"me": "root"}, plugins={"crawler": PLUGIN})


def test_plot_prints_the_chart_file_on_the_console(tmp_path):
    bot = project(tmp_path / "bot")
    ran = run_console(bot, "plot crawler loss\nplot load 2h\nplot crawler acc\n")
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    assert "matplotlib imported: False" in ran.stderr  # not at start: only for a chart
    lines = ran.stdout.splitlines()
    files = [m for m in map(FILE_LINE.match, lines) if m]
    assert [m[1] for m in files] == ["crawler-loss.png", "host-load.png"]
    for match in files:
        png = Path(match[3])
        assert png.stat().st_size == int(match[2]) > 0
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert image.imread(png).shape[:2] == (400, 800)
    assert any(line.startswith("crawler loss, last 1h: 0.03333 at ") for line in lines), lines
    assert any(line.startswith("load, last 2h: 0.5 at ") for line in lines), lines
    assert "crawler has no metric acc; its metrics: loss" in lines
    # stored in the bot's database: 30 points, the held ones written at the stop
    counts = query(
        bot,
        "SELECT source, name, count(*) FROM metric_points JOIN metric_series"
        " s ON s.id = series GROUP BY series ORDER BY source",
    )
    assert counts == [("crawler", "loss", 30), ("host", "load", 1)]


def test_without_matplotlib_plot_answers_with_a_sparkline(tmp_path):
    bot = project(tmp_path / "bot")
    no_matplotlib = patched(tmp_path / "no-matplotlib", MISSING_MATPLOTLIB)
    ran = run_console(bot, "plot crawler loss\n", **no_matplotlib)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    lines = ran.stdout.splitlines()
    assert not any(FILE_LINE.match(line) for line in lines)
    start = next(i for i, line in enumerate(lines) if line.startswith("crawler loss, last 1h"))
    summary, bars, span, hint = lines[start : start + 4]
    assert summary.endswith(" (step 2900), 30 points")
    assert len(bars) == 30 <= WIDTH and set(bars) <= set(BARS)  # one bar per point
    assert bars[0] == BARS[-1] and bars[-1] == BARS[0]  # falling: from max to min
    assert span == "min 0.03333 · max 1"
    assert hint == NO_CHARTS == "pip install 'lcbot[plot]' for charts"


def test_points_outlive_the_bot(tmp_path):
    bot = project(tmp_path / "bot")
    assert run_console(bot, "").returncode == 0  # records, stores the held points at stop
    (bot / "plugins" / "crawler.py").unlink()  # the next run records nothing
    ran = run_console(bot, "plot crawler loss\n")
    assert ran.returncode == 0, ran.stderr
    assert any(
        line.startswith("crawler loss, last 1h: ") and line.endswith(", 30 points")
        for line in ran.stdout.splitlines()
    ), ran.stdout
