"""Built-in heartbeat commands (admins): ``heartbeats`` lists the dead-man's switches with
when each last beat, ``heartbeats remove KEY`` forgets one — through ``bot.heartbeats``."""

from __future__ import annotations

import time

from lcbot.commands import CommandError
from lcbot.durations import format_duration
from lcbot.hookspecs import hookimpl
from lcbot.text import quote
from lcbot.users import Pri

USAGE = "heartbeats [remove KEY]"
NONE = "no heartbeats yet; a job creates one with: lcbot heartbeat KEY --every 1h"


def describe(beat, now: float) -> str:
    """``backup — every 1h (grace 10m) — last seen 12m ago — ok``."""
    every = f"every {format_duration(beat.every)}"
    if beat.grace:
        every += f" (grace {format_duration(beat.grace)})"
    seen = f"last seen {format_duration(max(0.0, now - beat.last_beat))} ago"
    return f"{beat.key} — {every} — {seen} — {'LATE' if beat.is_late(now) else 'ok'}"


@hookimpl
def register_commands(registry):
    @registry.command(
        "heartbeats",
        pri=Pri.ADMIN,
        usage=USAGE,
        help="list the heartbeats (dead-man's switches), late or ok; remove KEY forgets one",
    )
    async def heartbeats(ctx):
        words = (ctx.extra or "").split()
        if words and words[0] == "remove" and len(words) == 2:
            if ctx.bot.heartbeats.remove(words[1]):
                return f"heartbeat {quote(words[1])} removed"
            return f"no heartbeat {quote(words[1])}"
        if words:
            raise CommandError(f"usage: {USAGE}")
        listed = list(ctx.bot.heartbeats)
        if not listed:
            return NONE
        now = time.time()
        return "heartbeats:\n" + "\n".join(describe(beat, now) for beat in listed)
