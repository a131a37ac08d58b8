"""The job SDK: a program of yours offers commands, status, progress and alerts in chat.

    from lcbot import job
    j = job.connect("crawler")

    @j.command("interval", kind="set", pri="admin", help="seconds between polls")
    def interval(ctx):
        ...                     # ctx.value, ctx.user, ctx.reply(text); return the reply

    j.status(lambda: f"{pages} pages, {errors} errors")
    j.progress(done, total, note="page 52")
    j.metric("loss", 0.31, step=1200)
    j.alert("proxy pool exhausted", level="warning", key="proxies")
    j.heartbeat()

``connect`` finds the bot through ``LCBOT_URL`` (and ``LCBOT_JOB_TOKEN``) for another
machine, else ``LCBOT_CONFIG`` / ``./lcbot.toml`` → the bot's local socket. Standard
library only; the network work runs on one daemon thread (``lcbot.joblink``) and nothing
here raises into, blocks or crashes your program when the bot is down or restarting.
Command handlers run on their own threads; a handler's exception becomes the reply
``NAME failed: …``. Alerts of a local job are written to the bot's database while the bot
is stopped (as ``lcbot alert`` does), so they are not lost.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from lcbot import joblink

__all__ = ["Context", "Fail", "Job", "connect", "notify"]

LEVELS = ("info", "warning", "critical")
PRIVILEGES = ("root", "admin", "user")
STATUS_EVERY = 2.0  # seconds between checks of the status callable
_LAST: list[Job] = []  # the job this process connected last (for tqdm)


class Fail(Exception):
    """Raise from a command handler for an expected failure: the reply is the message."""


class Context:
    """What a job command handler gets (the same shape as a plugin handler's ``ctx``)."""

    __slots__ = ("_reply", "command", "extra", "pri", "room_id", "user")

    def __init__(
        self,
        command: str,
        user: str,
        pri: str,
        extra: str | None,
        room_id: str | None = None,
        _reply: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.command, self.user, self.pri, self.extra = command, user, pri, extra
        self.room_id, self._reply = room_id, _reply

    @property
    def value(self) -> str | None:
        """The text after the command (``interval:30`` → ``"30"``)."""
        return self.extra

    def reply(self, text: str) -> None:
        """Send the caller an extra message now (the return value is the final reply)."""
        self._reply(str(text))


class _Command:
    __slots__ = ("flags", "handler", "help", "kind", "name", "pri", "usage")

    def __init__(self, name: str, handler: Callable[[Context], Any], kind: str, pri: str,
                 help: str, usage: str, flags: dict[str, bool]) -> None:  # fmt: skip
        self.name, self.handler, self.kind, self.pri = name, handler, kind, pri
        self.help, self.usage, self.flags = help, usage, flags

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "pri": self.pri, "help": self.help,
                "usage": self.usage, **self.flags}  # fmt: skip


class Job:
    """One program's presence in the bot; make it with ``connect``."""

    def __init__(
        self,
        name: str,
        replace: bool = False,
        url: str | None = None,
        token: str | None = None,
        config: str | os.PathLike[str] | None = None,
        milestones: int = 0,
    ) -> None:
        self.name = name
        self.replace = replace
        self.milestones = milestones
        self.started = time.time()
        self.commands: dict[str, _Command] = {}
        self._status: Callable[[], Any] | str | None = None
        self._last_status: str | None = None
        self._on_stop: Callable[[], Any] | None = None
        self._config = config
        url = url or os.environ.get(joblink.URL_ENV) or None
        token = token or os.environ.get(joblink.TOKEN_ENV) or None
        self.remote = url is not None
        self.link = joblink.Link(
            self._hello,
            self._on_message,
            socket_path=None if url else joblink.find_socket(config),
            url=url,
            token=token,
        )
        self._closed = False
        self._stop_asked = False
        self._crash: str | None = None
        self._storing: list[threading.Thread] = []  # alerts being written to the database
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook
        atexit.register(self._at_exit)
        self.link.start()
        _LAST[:] = [self]
        self._watch = threading.Thread(target=self._watch_status, name="lcbot-job-status")
        self._watch.daemon = True
        self._watch.start()

    # --- what the program offers ---------------------------------------------------------

    def command(
        self,
        name: str,
        kind: str = "get",
        pri: str = "user",
        help: str = "",
        usage: str = "",
        confirm: bool = False,
        approve: bool = False,
    ) -> Callable[[Callable[[Context], Any]], Callable[[Context], Any]]:
        """Decorator: offer ``fn(ctx)`` as the chat command ``<job> <name>`` (``confirm``: the
        sender answers yes first; ``approve``: another admin or root approves it first)."""
        if kind not in ("get", "set") or pri not in PRIVILEGES:
            raise ValueError(f"command {name!r}: kind is get or set, pri one of {PRIVILEGES}")

        def register(fn: Callable[[Context], Any]) -> Callable[[Context], Any]:
            flags = {"confirm": confirm, "approve": approve}
            self.commands[name.lower()] = _Command(name.lower(), fn, kind, pri, help, usage, flags)
            self._send({"op": "commands", "commands": self._specs()})
            return fn

        return register

    def status(self, source: Callable[[], Any] | str) -> None:
        """The job's status line: a text, or a callable asked every few seconds."""
        self._status = source
        self._push_status()

    def on_stop(self, fn: Callable[[], Any]) -> None:
        """Called (on a thread of its own) when an admin sends ``<job> stop``; by default
        the program gets KeyboardInterrupt in its main thread."""
        self._on_stop = fn

    # --- what the program reports --------------------------------------------------------

    def progress(self, done: float, total: float | None = None, note: str = "") -> None:
        self._send({"op": "progress", "done": done, "total": total, "note": str(note)})

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        self._send({"op": "metric", "name": str(name), "value": float(value), "step": step})

    def alert(
        self,
        text: str,
        level: str = "warning",
        key: str | None = None,
        resolved: bool = False,
        labels: dict[str, str] | None = None,
    ) -> None:
        """An alert from this job (kept in the bot's database while a local bot is down),
        with ``labels`` and the labels ``job`` and ``host`` (the bot checks them)."""
        if level not in LEVELS:
            level = "warning"
        message = {"op": "alert", "text": str(text), "level": level, "key": key}
        message["labels"] = {str(k): str(v) for k, v in (labels or {}).items()}
        message["resolved"] = bool(resolved)
        if self.link.connected.is_set() or self.remote:
            self._send(message)
        else:
            store = threading.Thread(target=self._store_alert, args=(message,), daemon=True)
            self._storing.append(store)
            store.start()

    def heartbeat(self, every: float = 3600.0, grace: float = 0.0, key: str | None = None) -> None:
        """A beat of the heartbeat ``key`` (default: the job's name), expected every
        ``every`` seconds (plus ``grace``): the bot alerts when one is late."""
        self._send({"op": "heartbeat", "key": key or self.name, "every": every, "grace": grace})

    def output(self, line: str) -> None:
        """A line of the program's output, for ``<job> tail`` (``lcbot watch`` sends them)."""
        self._send({"op": "output", "line": str(line)[:2000]})

    def close(
        self,
        outcome: str = "finished",
        error: str | None = None,
        exit: int | None = None,
        quiet: bool = False,
    ) -> None:
        """Say goodbye (``finished``, ``stopped`` or ``crashed`` with the error's tail) and
        disconnect; ``quiet``: the bot tells nobody (the program said it itself)."""
        self._closed = True
        bye = {"op": "bye", "outcome": outcome, "error": error, "exit": exit, "quiet": quiet}
        self._send(bye)
        for store in self._storing:  # an alert of the program's last moments is kept too
            store.join(10)
        self.link.close()

    # --- inside ------------------------------------------------------------------------------

    def _specs(self) -> list[dict[str, Any]]:
        return [c.spec() for c in self.commands.values()]

    def _hello(self) -> dict[str, Any]:
        return {
            "op": "hello",
            "version": 1,
            "name": self.name,
            "host": _hostname(),
            "pid": os.getpid(),
            "started": self.started,
            "replace": self.replace,
            "milestones": self.milestones,
            "commands": self._specs(),
            "status": self._last_status,
        }

    def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # never into the host program
            self.link.send(message)

    def _on_message(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "run":
            threading.Thread(target=self._run, args=(message,), daemon=True).start()
        elif op == "status?":
            self._push_status(force=True)
        elif op == "stop":
            threading.Thread(target=self._stop, daemon=True).start()

    def _run(self, message: dict[str, Any]) -> None:
        run_id = message.get("id")
        command = self.commands.get(str(message.get("command", "")))

        def reply(text: str) -> None:
            self._send({"op": "say", "id": run_id, "text": text})

        if command is None:
            self._send({"op": "result", "id": run_id, "error": "no such command in this job"})
            return
        ctx = Context(
            command=command.name,
            user=str(message.get("user", "")),
            pri=str(message.get("pri", "user")),
            extra=message.get("extra"),
            room_id=message.get("room_id"),
            _reply=reply,
        )
        try:
            result = command.handler(ctx)
            text = None if result is None else str(result)
            self._send({"op": "result", "id": run_id, "text": text})
        except Fail as exc:
            self._send({"op": "result", "id": run_id, "error": str(exc)})
        except Exception as exc:
            self._send({"op": "result", "id": run_id, "error": f"{type(exc).__name__}: {exc}"})
        self._push_status()

    def _stop(self) -> None:
        self._stop_asked = True
        if self._on_stop is not None:
            self._on_stop()
            return
        import signal

        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            import _thread

            _thread.interrupt_main()  # KeyboardInterrupt in the main thread
        else:  # SIGINT ignored (started in the background) or handled otherwise
            os.kill(os.getpid(), signal.SIGTERM)

    def _excepthook(self, kind: Any, error: Any, trace: Any) -> None:
        import traceback

        lines = traceback.format_exception(kind, error, trace)
        tail = "".join(lines).strip().splitlines()[-6:]
        self._crash = f"{kind.__name__}: {error}\n" + "\n".join(tail)
        self._previous_hook(kind, error, trace)

    def _at_exit(self) -> None:
        """The program ends: finished, or crashed with the traceback's tail."""
        if self._closed:
            return
        if self._stop_asked:
            self.close("stopped")
        elif self._crash is not None:
            self.close("crashed", error=self._crash[:2000])
        else:
            self.close("finished")

    def _status_text(self) -> str | None:
        source = self._status
        if source is None:
            return None
        try:
            value = source() if callable(source) else source
        except Exception as exc:
            value = f"(status failed: {type(exc).__name__}: {exc})"
        return str(value)[:500]

    def _push_status(self, force: bool = False) -> None:
        text = self._status_text()
        if text is not None and (force or text != self._last_status):
            self._last_status = text
            self._send({"op": "status", "text": text})

    def _watch_status(self) -> None:
        while not self.link.refused:
            time.sleep(STATUS_EVERY)
            self._push_status()

    def _store_alert(self, message: dict[str, Any]) -> None:
        """The bot is not reachable: write the alert into its database (``lcbot alert``)."""
        try:
            from lcbot.db import DB_NAME, connect, transaction
            from lcbot.db.alerts import insert_new

            db_path = self.link.socket_path.parent / DB_NAME  # type: ignore[union-attr]
            checked = joblink.job_alert(self.name, _hostname(), message)
            db = connect(db_path)
            try:
                with transaction(db):
                    insert_new(db, [checked])
            finally:
                db.close()
        except Exception:
            self._send(message)  # then at least when the bot is back


def connect(
    name: str,
    *,
    replace: bool = False,
    url: str | None = None,
    token: str | None = None,
    config: str | os.PathLike[str] | None = None,
    milestones: int = 0,
) -> Job:
    """Connect this program to the bot as job ``name`` (returns at once; the connection is
    made, and remade, in the background). ``replace`` takes over a job of that name;
    ``milestones=25`` tells the job's users at every 25 % of its progress."""
    return Job(name, replace=replace, url=url, token=token, config=config, milestones=milestones)


def notify(name: str | None = None, **connect_options: Any) -> Callable[[Any], Any]:
    """Decorator (knockknock-style): the job tells chat when the function starts, finishes
    (with its duration) or crashes (with the traceback's tail). In distributed training only
    rank 0 notifies (``RANK`` / ``LOCAL_RANK``)."""
    from lcbot.jobnotify import notifier

    return notifier(name, connect_options, connect)


def _hostname() -> str:
    import socket

    return socket.gethostname()


def __getattr__(name: str) -> Any:
    if name == "tqdm":  # `from lcbot.job import tqdm`: tqdm stays an optional dependency
        from lcbot.jobtqdm import tqdm_class

        value = globals()["tqdm"] = tqdm_class(lambda: _LAST[0] if _LAST else None)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
