"""Built-in ``plot``: a chart of a recorded metric — ``plot SOURCE METRIC [SINCE]`` for a job
or plugin, ``plot METRIC [SINCE]`` for the host (``plot load``). A PNG with matplotlib
(``lcbot[plot]``), else a text sparkline; through the public API only (``bot.metrics``)."""

from __future__ import annotations

import time

from lcbot import charts
from lcbot.commands import CommandError
from lcbot.durations import format_duration, parse_duration
from lcbot.hookspecs import hookimpl
from lcbot.metrics import HOST
from lcbot.text import quote

USAGE = "plot [SOURCE] METRIC [SINCE]"
EXAMPLES = "e.g. plot crawler loss 2h, plot load"
DEFAULT_SINCE = 3600.0


def parse(extra: str | None) -> tuple[str, str, float]:
    """``crawler loss 2h`` → ``("crawler", "loss", 7200.0)``; ``load`` → ``("host", …)``."""
    words = (extra or "").split()
    since = DEFAULT_SINCE
    if len(words) >= 2:
        try:
            since = parse_duration(words[-1])
            words = words[:-1]
        except ValueError as exc:
            if len(words) == 3:
                raise CommandError(str(exc)) from None
    if len(words) == 1:
        return HOST, words[0], since
    if len(words) == 2:
        return words[0], words[1], since
    raise CommandError(f"usage: {USAGE} ({EXAMPLES})")


def label(source: str, name: str) -> str:
    return name if source == HOST else f"{source} {name}"


def no_data(metrics, source: str, name: str, since: float) -> str:
    """Why there is nothing to draw, and what there is."""
    names = metrics.names(source)
    if name in names:
        return (
            f"no points of {label(source, name)} in the last {format_duration(since)}; "
            f"try a longer time: plot {label(source, name)} 1d"
        )
    if names:
        return f"{source} has no metric {quote(name)}; its metrics: {', '.join(names)}"
    sources = metrics.sources()
    if sources:
        return f"no metrics from {quote(source)}; sources with metrics: {', '.join(sources)}"
    return "no metrics recorded yet (jobs and plugins record them; sysmon records load)"


def latest(point: tuple[float, int | None, float]) -> str:
    at, step, value = point
    when = time.strftime("%H:%M:%S", time.localtime(at))
    return f"{charts.number(value)} at {when}" + (f" (step {step})" if step is not None else "")


@hookimpl
def register_commands(registry):
    @registry.command(
        "plot",
        usage=USAGE,
        help="chart a job's metric, or the host's (plot load); since 1h by default",
    )
    def plot(ctx):  # a plain def: it reads the database and draws in a worker thread
        source, name, since = parse(ctx.extra)
        points = ctx.bot.metrics.series(source, name, time.time() - since)
        if not points:
            return no_data(ctx.bot.metrics, source, name, since)
        what, span = label(source, name), format_duration(since)
        count = f"{len(points)} point" + ("s" if len(points) != 1 else "")
        summary = f"{what}, last {span}: {latest(points[-1])}, {count}"
        try:
            image = charts.png(points, f"{what} — last {span}", name)
        except ImportError:
            values = [value for _, _, value in points]
            low, high = charts.number(min(values)), charts.number(max(values))
            return (
                f"{summary}\n{charts.sparkline(values)}\nmin {low} · max {high}\n{charts.NO_CHARTS}"
            )
        ctx.reply_file(image, f"{source}-{name}.png".replace("/", "_"))
        return summary
