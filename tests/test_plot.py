"""``plot`` on real bots: the PNG chart (matplotlib, from the test extra), the replies when
there is nothing to draw, the arguments, the sparkline, and sysmon's host figures."""

from __future__ import annotations

import io
import time

import pytest
from matplotlib import image

from lcbot.charts import BARS, WIDTH, sparkline
from lcbot.examples import sysmon
from lcbot.metrics import RESOLUTION
from lcbot.testing import TestBot, running_bot

PNG = b"\x89PNG\r\n\x1a\n"


def with_points(bot: TestBot, source: str = "crawler", name: str = "loss", n: int = 30) -> None:
    """``n`` points, one a minute, the last a minute ago (step 100·i, value 1/(i+1))."""
    now = time.time()
    for i in range(n):
        at = now - (n - i) * 60
        bot.app.metrics.record(source, name, 1 / (i + 1), step=100 * i, at=at)


@pytest.fixture
def bot(lcbot_bot):
    return lcbot_bot(users={"alice": "root", "carol": "user"})


def test_plot_replies_with_a_png_chart_and_the_latest_value(bot):
    with_points(bot)
    replies = bot.send("carol", "plot crawler loss")
    assert replies[0] == "crawler-loss.png"
    assert replies[1].startswith("crawler loss, last 1h: 0.03333 at ")
    assert replies[1].endswith(" (step 2900), 30 points")
    ((name, png),) = bot.files_to("carol")
    assert name == "crawler-loss.png"
    assert png.startswith(PNG) and len(png) > 5000
    pixels = image.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (400, 800)  # 8 x 4 inches at 100 dpi
    assert pixels.std() > 0.01  # something is drawn on it


def test_since_limits_the_points(bot):
    with_points(bot)
    (reply,) = [r for r in bot.send("carol", "plot crawler loss 10m") if not r.endswith(".png")]
    assert reply.endswith(", 9 points") or reply.endswith(", 10 points"), reply
    assert ", last 10m: " in reply


def test_plot_metric_alone_means_the_host(bot):
    with_points(bot, "host", "load")
    replies = bot.send("carol", "plot load 2h")
    assert replies[0] == "host-load.png"
    assert replies[1].startswith("load, last 2h: ")


@pytest.mark.parametrize(
    "text, reply",
    [
        ("plot", "plot failed: usage: plot [SOURCE] METRIC [SINCE]"),
        ("plot a b c d", "plot failed: usage: plot [SOURCE] METRIC [SINCE]"),
        ("plot crawler loss soon", "plot failed: 'soon' is not a duration"),
        ("plot crawler loss 400d", "plot failed: a duration must be at most 366d"),
        ("plot crawler acc", "crawler has no metric acc; its metrics: loss"),
        ("plot crawler loss 1s", "no points of crawler loss in the last 1s; try a longer time"),
        ("plot trainer loss", "no metrics from trainer; sources with metrics: crawler"),
        ("plot load", "no metrics from host; sources with metrics: crawler"),
    ],
)
def test_what_plot_says_when_there_is_nothing_to_draw(bot, text, reply):
    with_points(bot)
    (answer,) = bot.send("carol", text)
    assert answer.startswith(reply), answer
    assert bot.files_to("carol") == []


def test_with_no_metrics_at_all_plot_says_where_they_come_from(bot):
    (answer,) = bot.send("carol", "plot load")
    assert answer.startswith("no metrics recorded yet")


def test_a_plugin_records_under_its_name(tmp_path):
    import asyncio

    async def go():
        async with running_bot(tmp_path) as bot:
            bot.app.bot("trainer").metric("acc", 0.9, step=7)
            replies = await bot.send("alice", "plot trainer acc")
            assert replies[0] == "trainer-acc.png"
            assert "0.9 at " in replies[1] and "(step 7), 1 point" in replies[1]

    asyncio.run(go())


def test_a_name_with_a_slash_makes_a_plain_file_name(bot):
    with_points(bot, "crawler", "train/loss", 3)
    assert bot.send("carol", "plot crawler train/loss")[0] == "crawler-train_loss.png"


def test_sysmon_records_the_host_figures_at_start(lcbot_bot):
    bot = lcbot_bot(plugins=[sysmon], users={"alice": "root"})
    assert set(bot.app.metrics.names("host")) >= {"memory", "disk"}
    replies = bot.send("alice", "plot disk")
    assert replies[0] == "host-disk.png"
    assert replies[1].startswith("disk, last 1h: ") and replies[1].endswith(", 1 point")


# --- the sparkline ------------------------------------------------------------------------


def test_sparkline_scales_from_min_to_max():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == BARS
    assert sparkline([3.0, 3.0]) == BARS[3] * 2
    assert sparkline([]) == ""


def test_sparkline_has_a_fixed_width():
    line = sparkline([float(i % 17) for i in range(1000)])
    assert len(line) == WIDTH
    rising = sparkline([float(i) for i in range(1000)])
    assert rising[0] == BARS[0] and rising[-1] == BARS[-1]
    assert list(rising) == sorted(rising)


def test_resolution_is_what_the_readme_says():
    assert RESOLUTION == 10.0
