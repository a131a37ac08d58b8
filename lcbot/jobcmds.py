"""The chat commands of a job: its own (``<job>.<command>``, run in the job) and the ones
every job has (``<job>`` status, ``<job>.tail``, ``<job>.stop``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from lcbot.commands import NAME_RE, CmdType, Command, CommandError
from lcbot.users import Pri


class JobHub(Protocol):
    """What the commands use of the hub (``lcbot.jobhub.JobHub``)."""

    def session(self, name: str) -> Any: ...

    def next_id(self) -> str: ...


RUN_TIMEOUT = 600.0  # seconds a job command may take
MAX_COMMANDS = 50
RESERVED = ("tail", "stop")


def job_command(hub: JobHub, job: str, spec: dict[str, Any]) -> Command:
    """``<job>.<name>``: runs in the job (``run`` → ``result``; ``say`` on the way)."""
    kind = CmdType.SET if spec.get("kind") == "set" else CmdType.GET
    usage = spec.get("usage") or spec["name"] + (":VALUE" if kind is CmdType.SET else "")
    return Command(
        name=f"{job}.{spec['name']}",
        handler=_runner(hub, job, spec["name"]),
        kind=kind,
        pri=Pri[str(spec.get("pri", "user")).upper()],
        help=str(spec.get("help") or "")[:200],
        usage=f"{job} {usage}",
        plugin=f"job:{job}",
        confirm=spec.get("confirm") is True,
        approve=spec.get("approve") is True,
    )


def own_commands(hub: JobHub, job: str) -> list[Command]:
    plugin = f"job:{job}"
    return [
        Command(job, _show(hub, job), help=f"status of job {job}", plugin=plugin),
        Command(
            f"{job}.tail",
            _tail(hub, job),
            pri=Pri.ADMIN,
            help="last lines of its output",
            usage=f"{job} tail [N]",
            plugin=plugin,
        ),
        Command(
            f"{job}.stop",
            _stop(hub, job),
            pri=Pri.ADMIN,
            help="stop it (asks to confirm)",
            usage=f"{job} stop",
            plugin=plugin,
            confirm=True,
        ),
    ]


def check_commands(commands: Any) -> str | None:
    """What is wrong with a job's command list, or None."""
    if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
        return f"commands: a list of at most {MAX_COMMANDS}"
    for spec in commands:
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not NAME_RE.fullmatch(name) or "." in name:
            return f"invalid command name {str(name)[:40]!r}"
        if name.lower() in RESERVED:
            return f"command name {name!r} is reserved ({', '.join(RESERVED)})"
        if str(spec.get("pri", "user")).lower() not in ("root", "admin", "user"):
            return f"command {name}: pri is root, admin or user"
    return None


def _runner(hub: JobHub, job: str, command: str) -> Callable[[Any], Any]:
    async def run(ctx: Any) -> str | None:
        session = hub.session(job)
        run_id = hub.next_id()
        future = asyncio.get_running_loop().create_future()
        session.pending[run_id] = future
        session.replies[run_id] = ctx.reply
        session.send(
            {
                "op": "run",
                "id": run_id,
                "command": command,
                "extra": ctx.extra,
                "user": ctx.user.name,
                "pri": ctx.user.pri.label,
                "room_id": ctx.room_id,
            }
        )
        try:
            result = await asyncio.wait_for(future, RUN_TIMEOUT)
        except asyncio.TimeoutError:
            raise CommandError(f"no answer from {job} within {RUN_TIMEOUT:.0f} s") from None
        finally:
            session.pending.pop(run_id, None)
            session.replies.pop(run_id, None)
        if result.get("error"):
            raise CommandError(str(result["error"])[:2000])
        return None if result.get("text") is None else str(result["text"])

    return run


def _show(hub: JobHub, job: str) -> Callable[[Any], Any]:
    async def show(ctx: Any) -> str:
        from lcbot.jobview import details

        session = hub.session(job)
        before = session.status
        session.send({"op": "status?"})
        for _ in range(25):  # a fresh status line, if it comes within 0.25 s
            if session.status != before:
                break
            await asyncio.sleep(0.01)
        return details(session)

    return show


def _tail(hub: JobHub, job: str) -> Callable[[Any], Any]:
    def tail(ctx: Any) -> str:
        session = hub.session(job)
        count = int(ctx.extra) if ctx.extra and ctx.extra.strip().isdigit() else 20
        lines = list(session.output)[-max(1, min(count, 200)) :]
        return "\n".join(lines) if lines else f"no output from {job} yet"

    return tail


def _stop(hub: JobHub, job: str) -> Callable[[Any], Any]:
    def stop(ctx: Any) -> str:
        hub.session(job).send({"op": "stop"})
        return f"asked {job} to stop"

    return stop
