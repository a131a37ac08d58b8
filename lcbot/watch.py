"""``lcbot watch -- CMD ARGS…``: run any program as a job, unchanged.

CMD runs without a shell; its stdout and stderr pass through byte for byte (read in binary,
written to ours, flushed), and their lines feed ``<job> tail``. SIGINT, SIGTERM, SIGHUP,
SIGUSR1, SIGUSR2 and SIGWINCH are forwarded to CMD — except a terminal's own SIGINT or
SIGWINCH, which CMD, in our process group, got already. ``<job> stop`` (admin, confirmed)
sends SIGTERM, then SIGKILL after the grace. When CMD ends, one alert says how (``train.py
finished in 3h12m (exit 0)``, or ``failed after … (exit 1): <last lines>``), and the exit
status is CMD's (128+N for a signal, 127 when it cannot be started, as shells do). When the
bot is down CMD runs all the same; the alert waits in the bot's database. The alert has no
de-duplication key: each run's end is told, even two runs within ``repeat_interval``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lcbot import job
from lcbot.errors import UsageError
from lcbot.jobview import describe

GRACE = 10.0  # seconds between SIGTERM and SIGKILL for `<job> stop`
FORWARD = ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH")
FROM_TERMINAL = ("SIGINT", "SIGWINCH")  # a terminal sends these to its whole foreground group
TAIL_LINES, TAIL_CHARS = 10, 1000  # the failure alert's tail
MAX_LINE = 2000  # a line longer than this is cut into pieces for `tail`
DRAIN = 2.0  # seconds to wait for the last output after CMD ended (a child may hold the pipe)
INTERPRETERS = re.compile(r"(python|pypy|bash|sh|zsh|node|ruby|perl|php|julia|rscript)[\d.]*")
INVALID = re.compile(r"[\s:：.]+")


def job_name(argv: list[str]) -> tuple[str, str]:
    """(label, job name) for CMD: ``python -u train.py`` → (``train.py``, ``train``). The
    label is the program (the script, for an interpreter), the name its stem with any other
    dots, spaces or colons turned into ``-`` (job names have none), at most 32 characters."""
    program = Path(argv[0]).name
    label = program
    if INTERPRETERS.fullmatch(program.lower()):
        rest = iter(argv[1:])
        for word in rest:
            if word == "-m":
                label = next(rest, program).rpartition(".")[2]
                break
            if word in ("-c", "-e"):
                break
            if not word.startswith("-"):
                label = Path(word).name
                break
    stem = label.rsplit(".", 1)[0] if "." in label[1:] else label
    name = INVALID.sub("-", stem).strip("-")[:32] or "watch"
    return label, name


def exit_status(returncode: int) -> int:
    """A shell's view of the status: 128+N for a child killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class Watch:
    """One watched CMD: the child, its output pumps, signals, the job."""

    def __init__(self, argv: list[str], name: str, label: str, grace: float) -> None:
        self.argv, self.name, self.label, self.grace = argv, name, label, grace
        self.child: subprocess.Popen[bytes] | None = None
        self.job: Any = None
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.stop_asked = False
        self.started = time.time()
        self._pumps: list[threading.Thread] = []

    def start(self) -> None:
        """Spawn CMD (OSError when it cannot be started)."""
        self.child = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for source, target in ((self.child.stdout, 1), (self.child.stderr, 2)):
            pump = threading.Thread(target=self._pump, args=(source, target), daemon=True)
            pump.start()
            self._pumps.append(pump)

    def connect(self, config: str | None) -> None:
        j = job.connect(self.name, config=config)
        pid = self.child.pid if self.child else 0
        j.status(f"{' '.join(self.argv)[:300]} (pid {pid})")
        j.on_stop(self.stop)
        self.job = j

    def forward_signals(self) -> dict[int, Any]:
        """Install the forwarding handlers; returns the previous ones."""
        previous = {}
        for name in FORWARD:
            number = getattr(signal, name, None)
            if number is not None:
                previous[number] = signal.signal(number, self._forward)
        return previous

    def wait(self) -> int:
        """Wait for CMD and its output; the exit status."""
        assert self.child is not None
        returncode = self.child.wait()
        deadline = time.monotonic() + DRAIN
        for pump in self._pumps:
            pump.join(max(0.0, deadline - time.monotonic()))
        return exit_status(returncode)

    def finish(self, status: int) -> None:
        """The one alert on how CMD ended; then the job leaves quietly."""
        if self.job is None:
            return
        text, level = outcome(self.label, status, time.time() - self.started, self.stop_asked,
                              list(self.lines))  # fmt: skip
        self.job.alert(text, level=level)  # no key: a second run's end is news too
        kind = "finished" if status == 0 else "stopped" if self.stop_asked else "crashed"
        self.job.close(kind, exit=status, quiet=True)

    def stop(self) -> None:
        """``<job> stop``: SIGTERM, then SIGKILL when CMD is still there after the grace."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        self.stop_asked = True
        with contextlib.suppress(OSError):
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(self.grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                child.kill()

    # --- inside ------------------------------------------------------------------------------

    def _forward(self, number: int, frame: Any) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        if signal.Signals(number).name in FROM_TERMINAL and _terminal_sent_it_to(child):
            return
        with contextlib.suppress(OSError):
            child.send_signal(number)

    def _pump(self, source: Any, target: int) -> None:
        """Copy one stream byte for byte; split its lines for ``tail``."""
        fd = source.fileno()
        partial = b""
        writing = True
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            if writing:
                writing = _write_all(target, chunk)
                if not writing:  # our side is closed: CMD learns it as it would (EPIPE)
                    break
            partial = self._lines(partial + chunk)
        if partial:
            self._line(partial)
        source.close()

    def _lines(self, data: bytes) -> bytes:
        *complete, partial = data.split(b"\n")
        for raw in complete:
            self._line(raw)
        while len(partial) > MAX_LINE:
            self._line(partial[:MAX_LINE])
            partial = partial[MAX_LINE:]
        return partial

    def _line(self, raw: bytes) -> None:
        raw = raw.rstrip(b"\r").rpartition(b"\r")[2]  # a progress bar redrawn: its last state
        line = raw.decode("utf-8", errors="replace")
        self.lines.append(line)
        if self.job is not None:
            self.job.output(line)


def outcome(label: str, status: int, seconds: float, stopped: bool, lines: list[str]):
    """The end alert's (text, level)."""
    took = describe(seconds)
    if status == 0:
        return f"{label} finished in {took} (exit 0)", "info"
    if stopped:
        return f"{label} stopped after {took} (exit {status})", "info"
    text = f"{label} failed after {took} (exit {status})"
    tail = "\n".join(lines[-TAIL_LINES:])[-TAIL_CHARS:].strip("\n")
    return (f"{text}: {tail}" if tail.strip() else text), "warning"


def _write_all(fd: int, data: bytes) -> bool:
    """Write every byte to ``fd``; False when it is closed."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BrokenPipeError:
            return False
        except InterruptedError:
            continue
        except OSError:
            return False
    return True


def _terminal_sent_it_to(child: subprocess.Popen[bytes]) -> bool:
    """Whether a signal we got most likely came from our terminal, which sent it to CMD too:
    CMD is in our process group and that group is the terminal's foreground."""
    try:
        if os.getpgid(child.pid) != os.getpgrp():
            return False
        for fd in (0, 1, 2):
            with contextlib.suppress(OSError):
                return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        pass
    return False


def _bot_configured(config: str | None) -> bool:
    """A bot to report to: ``LCBOT_URL``, or the configuration file exists."""
    from lcbot.joblink import CONFIG_ENV, URL_ENV

    if os.environ.get(URL_ENV):
        return True
    return Path(config or os.environ.get(CONFIG_ENV) or "lcbot.toml").expanduser().is_file()


def run(argv: list[str], name: str | None, grace: float, config: str | None) -> int:
    """``lcbot watch``: CMD's exit status (``UsageError`` for a bad ``name``)."""
    label, derived = job_name(argv)
    name = (name or derived).lower()
    if not re.fullmatch(r"[^\s:：.]{1,32}", name):
        raise UsageError(f"--name {name[:40]!r}: 1-32 characters, no spaces, dots or colons")
    watch = Watch(argv, name, label, grace)
    previous = watch.forward_signals()
    try:
        try:
            watch.start()
        except OSError as exc:
            sys.stderr.write(f"lcbot watch: cannot run {argv[0]}: {exc.strerror or exc}\n")
            return 126 if isinstance(exc, PermissionError) else 127
        if _bot_configured(config):
            watch.connect(config)
        else:
            sys.stderr.write("note: no lcbot.toml here (see --config): running without the bot\n")
        status = watch.wait()
        watch.finish(status)
        return status
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
