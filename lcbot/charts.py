"""Charts for ``plot``: a PNG line chart with matplotlib (the optional extra ``lcbot[plot]``,
imported on the first chart, never at start) or, without it, a text sparkline."""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Sequence
from datetime import datetime

BARS = "▁▂▃▄▅▆▇█"
WIDTH = 40  # characters of a sparkline
NO_CHARTS = "pip install 'lcbot[plot]' for charts"
_render = threading.Lock()  # one chart at a time: matplotlib's caches are shared

Point = tuple[float, int | None, float]


def number(value: float) -> str:
    """``0.3141`` → ``0.3141``; ``123456.7`` → ``1.235e+05``."""
    return f"{value:.4g}"


def sparkline(values: Sequence[float], width: int = WIDTH) -> str:
    """At most ``width`` bars, each the mean of its share of ``values``, scaled min to max."""
    if len(values) > width:
        n = len(values)
        cuts = [i * n // width for i in range(width + 1)]
        values = [sum(values[a:b]) / (b - a) for a, b in itertools.pairwise(cuts)]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return BARS[3] * len(values)
    top = len(BARS) - 1
    return "".join(BARS[min(top, int((v - low) / (high - low) * len(BARS)))] for v in values)


def png(points: Sequence[Point], title: str, label: str) -> bytes:
    """A line chart of ``points`` (local time on the x axis) as PNG bytes. ``ImportError``
    without matplotlib."""
    from matplotlib import dates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times = [datetime.fromtimestamp(at) for at, _, _ in points]
    values = [value for _, _, value in points]
    with _render:
        figure = Figure(figsize=(8, 4), dpi=100)
        FigureCanvasAgg(figure)  # the Agg backend, for this figure only (no pyplot)
        axes = figure.add_subplot()
        axes.plot(times, values, linewidth=1.5, marker="." if len(points) <= 60 else None)
        axes.set_title(title)
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        locator = dates.AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png")
    return out.getvalue()
