"""A crawler-style loop steered from chat: ``crawler interval:30``, ``crawler pause``,
``crawler resume``, and a status line (``crawler``).

Run it next to a bot (``lcbot run`` in the same folder, or ``LCBOT_CONFIG=…``):

    python examples/crawler.py
"""

from __future__ import annotations

import threading

from lcbot import job

state = {"interval": 2.0, "pages": 0, "errors": 0}
running = threading.Event()
running.set()
wake = threading.Event()  # a new interval or resume takes effect at once

j = job.connect("crawler")


@j.command("interval", kind="set", pri="admin", help="seconds between pages", usage="interval:N")
def interval(ctx: job.Context) -> str:
    try:
        seconds = float(ctx.value or "")
    except ValueError:
        raise job.Fail(f"interval needs a number of seconds, not {ctx.value!r}") from None
    if not 0.1 <= seconds <= 86400:
        raise job.Fail("interval: between 0.1 and 86400 seconds")
    state["interval"] = seconds
    wake.set()
    return f"interval is now {seconds:g}s"


@j.command("pause", pri="admin", help="stop fetching until resume")
def pause(ctx: job.Context) -> str:
    running.clear()
    return f"paused after {state['pages']} pages"


@j.command("resume", pri="admin", help="fetch again")
def resume(ctx: job.Context) -> str:
    running.set()
    wake.set()
    return "resumed"


def status() -> str:
    mode = "running" if running.is_set() else "paused"
    return f"{mode}, {state['pages']} pages, {state['errors']} errors, every {state['interval']:g}s"


j.status(status)


def fetch(page: int) -> None:
    """Stands in for the real work."""
    print(f"fetched page {page}", flush=True)


if __name__ == "__main__":
    while True:
        running.wait()
        state["pages"] += 1
        fetch(state["pages"])
        j.output(f"fetched page {state['pages']}")
        wake.wait(state["interval"])
        wake.clear()
