"""Process-level guards of a running bot: one bot per data dir, signals restored on exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from lcbot.errors import LcbotError

log = logging.getLogger("lcbot.app")


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``data_dir`` so that two bots never share one outbox.

    The folder is created 0700 and the lock file 0600 (looser existing ones are tightened,
    see ``lcbot.db.private_dir``); ``ConfigError`` when the folder cannot be created."""
    import fcntl

    from lcbot.db import private_dir, private_file
    from lcbot.errors import ConfigError

    lock = data_dir / "lcbot.lock"
    try:
        warning = private_dir(data_dir)
        private_file(lock)
        handle = open(lock, "a")  # noqa: SIM115 - closed by the with block below
    except OSError as exc:
        raise ConfigError(
            f"cannot use the data dir {data_dir} (check [bot] data_dir): "
            f"{exc.strerror or exc}: {exc.filename or lock}"
        ) from None
    if warning:
        log.warning("%s", warning)
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LcbotError(
                f"another lcbot is running with the data dir {data_dir}; stop it first"
            ) from None
        yield  # closing the file releases the lock


@contextlib.contextmanager
def signal_handlers(on_signal: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``on_signal`` on the loop; the previous handlers come back."""
    loop = asyncio.get_running_loop()
    saved = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, on_signal)
            saved[sig] = previous
    try:
        yield
    finally:
        for sig, previous in saved.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous)
