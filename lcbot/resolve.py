"""Which command a message names, when jobs offer commands too.

Job commands are registered as ``<job>.<command>`` (``crawler.interval``) and written
``crawler interval:30``; a bare ``crawler`` is the job's status. The bare
``interval:30`` also works when exactly one thing is called ``interval``; otherwise the
answer lists the choices. A plugin's command can always be written ``<plugin> <command>``
too (``sysmon interval:30``), so a job offering the same name never hides it.
"""

from __future__ import annotations

from lcbot.commands import Command, Registry, parse


def resolve(
    registry: Registry, name: str, extra: str | None
) -> tuple[Command, str | None] | str | None:
    """``(command, extra)``, the text listing the choices, or None (no such command)."""
    command = registry.get(name)
    if command is not None and command.plugin == f"job:{name}" and extra:
        sub = parse(extra)  # `crawler interval:30`
        if sub is not None:
            inner = registry.get(f"{name}.{sub[0]}")
            if inner is not None:
                return inner, sub[1]
        return f"job {name} has no command '{extra.split()[0][:32]}' — send help"
    if command is None and extra:  # `sysmon interval:30`: a plugin's own command
        sub = parse(extra)
        if sub is not None:
            inner = registry.get(sub[0])
            if inner is not None and inner.plugin == name:
                return inner, sub[1]
    offered = registry.offered_by_jobs(name)
    if command is not None and not command.plugin.startswith("job:"):
        offered = [command, *offered]
    elif command is not None:
        return command, extra
    if len(offered) == 1:
        return offered[0], extra
    if not offered:
        return None
    choices = ", ".join(_written(c) for c in offered)
    return f"{name} is offered by several: {choices} — say which"


def _written(command: Command) -> str:
    if command.plugin.startswith("job:"):
        return command.name.replace(".", " ", 1)
    return f"{command.plugin} {command.name}" if command.plugin else command.name
