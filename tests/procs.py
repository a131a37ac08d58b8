"""Helpers for end-to-end tests that run real ``python -m lcbot`` processes.

Same style as ``tests/test_console_e2e.py``: every wait is bounded by a deadline, a bot
whose stdin stays open is a ``Bot``, and a project is a temp folder with an lcbot.toml.
``Bot`` also records when each stdout line arrived, for latency checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
WAIT = 20.0  # seconds: the most any single step may take

TEAM = {"me": "root", "bob": "admin", "carol": "user"}


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without the variables that would change a child's
    behaviour, plus ``extra``."""
    drop = ("LCBOT_CONFIG", "LCBOT_LOAD_PLUGINS", "LCBOT_LOG_LEVEL", "COLUMNS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def make_project(
    folder: Path,
    users: dict[str, str] | None = None,
    extra: str = "",
    plugins: dict[str, str] | None = None,
) -> Path:
    """A project folder: lcbot.toml with ``users`` (name → pri) and ``extra`` TOML, and
    ``plugins/<name>.py`` for each entry of ``plugins``."""
    (folder / "plugins").mkdir(parents=True)
    toml = '[bot]\nname = "testbot"\ndata_dir = ".lcbot"\n\n'
    for name, pri in (users or TEAM).items():
        toml += f'[[users]]\nname = "{name}"\npri = "{pri}"\n\n'
    toml += '[plugins]\ndirs = ["plugins"]\n\n' + textwrap.dedent(extra)
    (folder / "lcbot.toml").write_text(toml)
    for name, source in (plugins or {}).items():
        (folder / "plugins" / f"{name}.py").write_text(textwrap.dedent(source))
    return folder


def db_path(project: Path) -> Path:
    return project / ".lcbot" / "lcbot.db"


def query(project: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of ``sql`` on the project's database (read through a separate connection)."""
    with contextlib.closing(sqlite3.connect(db_path(project), timeout=10)) as db:
        return db.execute(sql, params).fetchall()


class Ran(NamedTuple):
    """A finished ``python -m lcbot``: ``rc, out, err = lcbot(...)`` or ``.returncode`` …"""

    returncode: int
    stdout: str
    stderr: str


def lcbot(
    project: Path, *args: str, input: str | bytes = "", timeout: float = 60.0, **env: str
) -> Ran:
    """``python -m lcbot ARGS`` in ``project``, stdin ``input``; the one way tests start a
    finished command. Arguments may hold lone surrogates (they reach the child as the raw
    bytes); output is decoded with replacement characters; a hang fails the test."""
    data = input.encode() if isinstance(input, str) else input
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lcbot", *args],
            cwd=project,
            env=child_env(**env),
            input=data,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        err = (exc.stderr or b"").decode(errors="replace")[-2000:]
        raise AssertionError(f"lcbot {args} still running after {timeout}s: {err}") from None
    return Ran(
        done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    )


def spawn(project: Path, *args: str, env: dict[str, str] | None = None, **popen: Any):
    """``python -m lcbot ARGS`` in ``project`` as a running ``subprocess.Popen`` (the one
    way tests start a long-running one); ``env``: extra variables."""
    return subprocess.Popen(
        [sys.executable, "-m", "lcbot", *args], cwd=project, env=child_env(**(env or {})), **popen
    )


def with_path(*folders: Path, **extra: str) -> dict[str, str]:
    """Environment additions so that a child imports from ``folders`` first."""
    paths = [*map(str, folders), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), **extra}


def patched(folder: Path, code: str) -> dict[str, str]:
    """Environment for a child that runs ``code`` at start-up (as ``sitecustomize``): fault
    injection from outside lcbot, e.g. a transport whose sends fail. ``import sitecustomize``
    reaches what it defines."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(textwrap.dedent(code))
    return with_path(folder)


def lcbot_json(project: Path, *args: str) -> Any:
    result = lcbot(project, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line(stderr: str) -> str:
    """The one ``error: …`` line a refused command writes (no traceback): returned."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def run_console(project: Path, text: str = "", *args: str, **env: str) -> Ran:
    """``lcbot run --transport console`` with ``text`` on stdin (it stops at its end)."""
    return lcbot(project, "run", "--transport", "console", *args, input=text, **env)


def wait_until(
    condition: Callable[[], Any], what: str, timeout: float = WAIT, every: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(every)


class Bot:
    """A running ``lcbot run --transport console`` whose stdin stays open until closed.

    ``seen`` holds the stdout lines consumed so far, ``times`` when each arrived
    (``time.monotonic()``, taken by the reader thread as the line came in).
    """

    def __init__(self, project: Path, *args: str, **env: str) -> None:
        self.stderr_file = (project.parent / f"stderr-{time.monotonic_ns()}.log").open("w+")
        self.proc = spawn(
            project,
            "run",
            "--transport",
            "console",
            *args,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            text=True,
        )
        self.lines: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self.seen: list[str] = []
        self.times: list[float] = []
        self.closed = False
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))
        self.lines.put(None)

    def _take(self, timeout: float) -> bool:
        """Consume one line (False on timeout or when stdout has closed)."""
        if self.closed:
            return False
        try:
            item = self.lines.get(timeout=max(timeout, 0))
        except queue.Empty:
            return False
        if item is None:
            self.closed = True
            return False
        self.times.append(item[0])
        self.seen.append(item[1])
        return True

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def end_input(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def expect(self, want: str | Callable[[str], bool], timeout: float = WAIT) -> str:
        """The next stdout line equal to ``want`` (or matching it); fail after ``timeout``."""
        match = want if callable(want) else (lambda line: line == want)
        deadline = time.monotonic() + timeout
        while True:
            if not self._take(deadline - time.monotonic()):
                state = "stdout closed" if self.closed else f"not within {timeout}s"
                raise AssertionError(f"no line {want!r} ({state}); output so far: {self.seen}")
            if match(self.seen[-1]):
                return self.seen[-1]

    def poll(self) -> list[str]:
        """The lines that arrived since the last look (does not wait)."""
        start = len(self.seen)
        while self._take(0):
            pass
        return self.seen[start:]

    def rest(self, timeout: float = WAIT) -> list[str]:
        """All remaining stdout lines until the pipe closes (the process has ended)."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while not self.closed:
            if not self._take(deadline - time.monotonic()) and not self.closed:
                raise AssertionError(f"stdout still open after {timeout}s: {self.seen[start:]}")
        return self.seen[start:]

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s; output: {self.seen}") from None

    @property
    def stderr(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        self.stderr_file.close()


@contextlib.contextmanager
def bots() -> Iterator[Callable[..., Bot]]:
    """``with bots() as start: bot = start(project)``; bots still running are killed."""
    started: list[Bot] = []

    def start(project: Path, *args: str, **env: str) -> Bot:
        bot = Bot(project, *args, **env)
        started.append(bot)
        return bot

    try:
        yield start
    finally:
        for bot in started:
            bot.close()
