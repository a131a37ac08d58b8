"""``from lcbot.job import tqdm``: a drop-in ``tqdm`` whose progress the job reports.

    from lcbot import job
    from lcbot.job import tqdm

    j = job.connect("train")
    for batch in tqdm(loader, desc="epoch 1"):     # or tqdm(..., job=j)
        ...

It is ``tqdm.auto.tqdm`` (terminal or notebook) that also sends ``progress(n, total,
note=desc)`` to the job given as ``job=``, else to the job this process connected last —
at most every 0.5 s, and once more when the bar closes. tqdm is an optional dependency:
without it, the import fails with a message saying ``pip install tqdm``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

EVERY = 0.5  # seconds between progress reports


def tqdm_class(last_job: Callable[[], Any]) -> type:
    """The ``tqdm`` subclass; ``last_job()`` is the job to report to without ``job=``."""
    try:
        from tqdm.auto import tqdm as base
    except ImportError as exc:
        raise ImportError("lcbot.job.tqdm needs tqdm: pip install tqdm", name="tqdm") from exc

    class tqdm(base):  # type: ignore[misc,valid-type]
        """``tqdm.auto.tqdm`` plus ``job=``: reports its progress through the job."""

        def __init__(self, *args: Any, job: Any = None, **kwargs: Any) -> None:
            self._lcbot_job = job if job is not None else last_job()
            self._lcbot_sent, self._lcbot_closed = 0.0, False
            super().__init__(*args, **kwargs)
            self._lcbot_report(force=True)

        def refresh(self, *args: Any, **kwargs: Any) -> Any:
            shown = super().refresh(*args, **kwargs)  # tqdm redraws: n is current now
            self._lcbot_report()
            return shown

        def close(self) -> None:
            if not getattr(self, "_lcbot_closed", True):
                self._lcbot_closed = True
                self._lcbot_report(force=True)
            super().close()

        def _lcbot_report(self, force: bool = False) -> None:
            job = getattr(self, "_lcbot_job", None)
            if job is None:
                return
            now = time.monotonic()
            if not force and now - self._lcbot_sent < EVERY:
                return
            self._lcbot_sent = now
            with contextlib.suppress(Exception):  # never into the host program
                job.progress(self.n, self.total, note=self.desc or "")

    return tqdm
