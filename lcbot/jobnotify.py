"""``@job.notify(name=...)``: tell chat when a function starts, finishes or crashes.

    from lcbot import job

    @job.notify(name="train")
    def main():
        ...

The job connects when the function is called (the bot tells its users ``train on HOST
connected (pid N)``: the start notice), and when it returns, one info alert ``train
finished in 3h12m``; when it raises, one warning ``train crashed after 12m: ValueError: …``
with the traceback's tail, and the exception goes on. In distributed training only rank 0
(``RANK`` and ``LOCAL_RANK`` unset or ``0``) connects at all; the other ranks just run the
function. Standard library only, like ``lcbot.job``.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import time
from collections.abc import Callable
from typing import Any

RANK_VARIABLES = ("RANK", "LOCAL_RANK")
TAIL = 6  # lines of the traceback in a crash alert
INVALID = re.compile(r"[\s:：.]+")


def rank_zero() -> bool:
    """Whether this process is rank 0 (or not part of a distributed run)."""
    return all(os.environ.get(v, "0").strip() in ("", "0") for v in RANK_VARIABLES)


def notifier(
    name: str | None, connect_options: dict[str, Any], connect: Callable[..., Any]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The decorator of ``job.notify``; ``connect`` is ``lcbot.job.connect``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        job_name = name or INVALID.sub("-", fn.__name__).strip("-")[:32] or "job"

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                if not rank_zero():
                    return await fn(*args, **kwargs)
                with _Notice(job_name, connect(job_name, **connect_options)):
                    return await fn(*args, **kwargs)

            return run_async

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            if not rank_zero():
                return fn(*args, **kwargs)
            with _Notice(job_name, connect(job_name, **connect_options)):
                return fn(*args, **kwargs)

        return run

    return decorate


class _Notice:
    """Around one call: the end alert and a quiet goodbye (the alert said it)."""

    def __init__(self, name: str, job: Any) -> None:
        self.name, self.job, self.started = name, job, time.time()

    def __enter__(self) -> _Notice:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        from lcbot.jobview import describe

        took = describe(time.time() - self.started)
        if kind is None or (issubclass(kind, SystemExit) and error.code in (None, 0)):
            self.job.alert(f"{self.name} finished in {took}", level="info")
            self.job.close("finished", quiet=True)
        elif issubclass(kind, Exception):
            import traceback

            lines = "".join(traceback.format_exception(kind, error, trace)).strip().splitlines()
            detail = f"{kind.__name__}: {error}\n" + "\n".join(lines[-TAIL:])
            text = f"{self.name} crashed after {took}: {detail}"
            self.job.alert(text[:2000], level="warning")
            self.job.close("crashed", error=detail[:2000], quiet=True)
        else:  # KeyboardInterrupt, SystemExit
            self.job.alert(f"{self.name} stopped after {took} ({kind.__name__})")
            self.job.close("stopped", quiet=True)
