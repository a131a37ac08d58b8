"""The bot's side of jobs: programs connected through the job SDK (``lcbot.job``).

A job says ``hello`` (name, host, pid, its commands); the hub registers its commands in the
``Registry`` as ``<job>.<command>`` (plugin ``job:<job>``), plus ``<job>`` (its status),
``<job>.tail`` and ``<job>.stop``, so they obey privileges, ``authorize`` hooks, SET
serialization and notices like any command, and their replies go through the outbox. A
command runs in the job: the hub sends ``run`` and awaits ``result`` (``say`` messages on
the way are extra replies). Alerts, metrics and heartbeats are handed to the bot's own
components. The users who may steer a job are told once when it connects and when it goes.

Connections (the local socket ``jobsock``, HTTP ``/jobs/exchange``) give the hub
``attach(hello, send)`` → a ``Session`` or a refusal, ``handle(session, message)`` and
``detach(session)``; all on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcbot.commands import NAME_RE, CmdType, Command, CommandError, Registry
from lcbot.jobcmds import check_commands, job_command, own_commands
from lcbot.joblink import job_alert
from lcbot.jobview import describe, progress_line
from lcbot.users import User

log = logging.getLogger("lcbot.jobs")

GONE_GRACE = 5.0  # seconds a job may be away (reconnecting) before "gone" is told
KEEP_GONE = 20  # jobs that went away, still listed by `jobs`


@dataclass
class Session:
    """One connected (or recently gone) job."""

    name: str
    host: str
    pid: int
    started: float  # the job process's start (its clock)
    send: Callable[[dict[str, Any]], None]
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str | None = None
    progress: tuple[float, float | None, str, float] | None = None  # done, total, note, at
    first_progress: tuple[float, float] | None = None  # (done, at) for the ETA
    milestone: int = 0  # the last progress milestone told (percent)
    milestones: int = 0  # tell every N percent (0: never)
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=500))
    connected_at: float = field(default_factory=time.time)
    gone_at: float | None = None
    outcome: str | None = None  # finished / crashed / gone
    pending: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    replies: dict[str, Callable[[str], None]] = field(default_factory=dict)
    bye: dict[str, Any] | None = None

    @property
    def connected(self) -> bool:
        return self.gone_at is None


class JobHub:
    def __init__(
        self,
        registry: Registry,
        say: Callable[..., None],
        submit: Callable[[Any], Any],
        steerers: Callable[[list[Command]], list[User]],
        on_metric: Callable[..., None] | None = None,
        on_heartbeat: Callable[..., None] | None = None,
        seen_file: Path | None = None,
    ) -> None:
        self.registry = registry
        self.say = say  # outbox put(recipient, text, kind)
        self.submit = submit  # the alert router
        self.steerers = steerers  # the users who may run any of these commands
        self.on_metric = on_metric
        self.on_heartbeat = on_heartbeat
        self.sessions: dict[str, Session] = {}
        self.gone: collections.deque[Session] = collections.deque(maxlen=KEEP_GONE)
        self.seen = SeenJobs(seen_file)
        self._ids = itertools.count(1)
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def lines(self) -> list[str]:
        """``jobs``: connected jobs, then the ones that went away lately."""
        from lcbot.jobview import summary

        return [summary(s) for s in self.sessions.values()] + [summary(s) for s in self.gone]

    # --- connections ---------------------------------------------------------------------

    def attach(self, hello: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        """A job said hello: its ``Session``, or the refusal's text."""
        name = str(hello.get("name", "")).lower()
        if not NAME_RE.fullmatch(name) or "." in name:
            return f"invalid job name {name[:40]!r}: 1-32 characters, no spaces, dots or colons"
        taken = self.registry.get(name)
        if taken is not None and not taken.plugin.startswith("job:"):
            return f"the job name {name!r} is a command of plugin {taken.plugin or 'lcbot'}"
        commands = hello.get("commands") or []
        problem = check_commands(commands)
        if problem:
            return problem
        old = self.sessions.get(name)
        if old is not None and old.connected:
            if not hello.get("replace"):
                return (
                    f"a job named {name} is already connected (on {old.host}, pid {old.pid}); "
                    "connect with replace=True to take over"
                )
            old.send({"op": "replaced"})
            self._drop(old, quiet=True)
        session = Session(
            name=name,
            host=str(hello.get("host", "?"))[:64],
            pid=int(hello.get("pid") or 0),
            started=float(hello.get("started") or time.time()),
            send=send,
            status=hello.get("status"),
            milestones=int(hello.get("milestones") or 0),
        )
        timer = self._timers.pop(name, None)
        returning = timer is not None or (old is not None and _same_process(old, session))
        if timer is not None:
            timer.cancel()
        if old is not None and not old.connected and _same_process(old, session):
            session.output, session.progress = old.output, old.progress
        self.sessions[name] = session
        self._register(session, commands)
        send({"op": "welcome", "name": name})
        log.info("job %s connected from %s (pid %d)", name, session.host, session.pid)
        if not returning and not self.seen.seen_before(session):  # not after a bot restart
            self._tell(session, f"{name} on {session.host} connected (pid {session.pid})")
        return session

    def detach(self, session: Session) -> None:
        """The connection ended (with or without a ``bye``)."""
        if self.sessions.get(session.name) is not session or not session.connected:
            return
        self._unregister(session)
        session.gone_at = time.time()
        self._fail_pending(session, f"{session.name} went away")
        if session.bye is not None:
            self._told_gone(session)
            return
        loop = asyncio.get_running_loop()  # it may come back (a restart of its connection)
        self._timers[session.name] = loop.call_later(GONE_GRACE, self._told_gone, session)

    def _drop(self, session: Session, quiet: bool = False) -> None:
        self._unregister(session)
        session.gone_at = time.time()
        self._fail_pending(session, f"{session.name} was replaced")
        if not quiet:
            self._told_gone(session)

    def _told_gone(self, session: Session) -> None:
        self._timers.pop(session.name, None)
        if self.sessions.get(session.name) is not session:
            return  # it came back
        bye = session.bye or {}
        session.outcome = bye.get("outcome") or "gone"
        age = describe((session.gone_at or time.time()) - session.started)  # how long it ran
        where = f"{session.name} on {session.host}"
        if session.outcome == "crashed":
            text = f"{session.name} crashed: {bye.get('error') or 'no details'}"
        elif session.outcome in ("finished", "stopped"):
            text = f"{where} {session.outcome} after {age}"
        else:
            text = f"{where} is gone after {age}"
        self.gone.appendleft(session)
        del self.sessions[session.name]
        log.info("job %s: %s", session.name, session.outcome)
        if not bye.get("quiet"):  # quiet: the job told it itself (an alert, `lcbot watch`)
            self._tell(session, text, commands=list(session.commands.values()))

    # --- messages from a job ---------------------------------------------------------------

    def handle(self, session: Session, message: dict[str, Any]) -> None:
        op = message.get("op")
        handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            session.send({"op": "error", "error": f"unknown op {str(op)[:32]!r}"})
            return
        try:
            handler(session, message)
        except (TypeError, ValueError, KeyError) as exc:  # a bad message changes nothing
            session.send({"op": "error", "error": f"bad {op} message: {exc}"})

    def _op_status(self, session: Session, message: dict[str, Any]) -> None:
        session.status = str(message["text"])[:500]

    def _op_progress(self, session: Session, message: dict[str, Any]) -> None:
        done = float(message["done"])
        total = None if message.get("total") is None else float(message["total"])
        now = time.time()
        if session.first_progress is None or done < session.first_progress[0]:
            session.first_progress = (done, now)
        session.progress = (done, total, str(message.get("note") or "")[:200], now)
        if session.milestones and total:
            reached = int(done * 100 / total) // session.milestones * session.milestones
            if reached > session.milestone:
                session.milestone = reached
                self._tell(session, f"{session.name}: {progress_line(session)}")

    def _op_metric(self, session: Session, message: dict[str, Any]) -> None:
        value = float(message["value"])
        step = message.get("step")
        if self.on_metric is not None:
            self.on_metric(session.name, str(message["name"])[:64], value, step)

    def _op_alert(self, session: Session, message: dict[str, Any]) -> None:
        self.submit(job_alert(session.name, session.host, message))

    def _op_heartbeat(self, session: Session, message: dict[str, Any]) -> None:
        if self.on_heartbeat is not None:
            key = str(message.get("key") or session.name)[:64]
            every, grace = float(message.get("every", 3600)), float(message.get("grace", 0))
            self.on_heartbeat(key, every, grace, f"job:{session.name}")

    def _op_output(self, session: Session, message: dict[str, Any]) -> None:
        session.output.append(str(message["line"])[:2000])

    def _op_commands(self, session: Session, message: dict[str, Any]) -> None:
        problem = check_commands(message["commands"])
        if problem:
            raise ValueError(problem)
        self._unregister(session)
        self._register(session, message["commands"])

    def _op_say(self, session: Session, message: dict[str, Any]) -> None:
        reply = session.replies.get(str(message.get("id")))
        if reply is not None:
            reply(str(message["text"]))

    def _op_result(self, session: Session, message: dict[str, Any]) -> None:
        future = session.pending.pop(str(message.get("id")), None)
        if future is not None and not future.done():
            future.set_result(message)

    def _op_bye(self, session: Session, message: dict[str, Any]) -> None:
        session.bye = {k: message.get(k) for k in ("outcome", "error", "exit", "quiet")}

    # --- commands ----------------------------------------------------------------------------

    def _register(self, session: Session, specs: list[dict[str, Any]]) -> None:
        session.commands = {spec["name"]: job_command(self, session.name, spec) for spec in specs}
        for command in [*own_commands(self, session.name), *session.commands.values()]:
            self.registry.remove(command.name)
            self.registry.add(command)

    def _unregister(self, session: Session) -> None:
        for command in list(self.registry):
            if command.plugin == f"job:{session.name}":
                self.registry.remove(command.name)

    def session(self, name: str) -> Session:
        """The connected job ``name`` (CommandError when it is not)."""
        session = self.sessions.get(name)
        if session is None or not session.connected:
            raise CommandError(f"job {name} is not connected")
        return session

    def next_id(self) -> str:
        return str(next(self._ids))

    def _fail_pending(self, session: Session, why: str) -> None:
        for future in session.pending.values():
            if not future.done():
                future.set_result({"error": why})
        session.pending.clear()

    def _tell(self, session: Session, text: str, commands: list[Command] | None = None) -> None:
        commands = commands or list(session.commands.values())
        steering = [c for c in commands if c.kind is CmdType.SET] or commands
        people = self.steerers(steering) if steering else self.steerers([])
        for user in people:
            self.say(user.name, text, "notice")


class SeenJobs:
    """The job processes told as connected (``<data_dir>/jobs-seen.json``), so that a job
    reconnecting after a bot restart is not announced again."""

    KEEP = 200

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: list[list[Any]] = []
        if path is not None:
            try:
                loaded = json.loads(path.read_text())
                self.entries = [e for e in loaded if isinstance(e, list)][-self.KEEP :]
            except (OSError, ValueError, TypeError):
                self.entries = []

    def seen_before(self, session: Session) -> bool:
        """Whether this process was told before; remembers it from now on."""
        entry = [session.name, session.host, session.pid, session.started]
        if entry in self.entries:
            return True
        self.entries = [*self.entries, entry][-self.KEEP :]
        if self.path is not None:
            try:
                from lcbot.private import write_private

                write_private(self.path, json.dumps(self.entries).encode())
            except OSError as exc:
                log.warning("could not write %s: %s", self.path, exc)
        return False


def _same_process(a: Session, b: Session) -> bool:
    return (a.host, a.pid, a.started) == (b.host, b.pid, b.started)
