"""Built-in commands for firing alerts: ``alerts`` lists them, ``ack`` / ``unack`` take or
give back one (anyone), ``resolve`` ends one that never resolves by itself (admins). They
are GET commands: the firing state tells the other recipients itself (a SET's "X set …"
notice would say it twice)."""

from __future__ import annotations

import time

from lcbot.commands import CommandError
from lcbot.hookspecs import hookimpl
from lcbot.users import Pri

MAX_LINES = 20  # alerts listed in chat; the rest is counted


def _ref(ctx, verb: str) -> str:
    words = (ctx.extra or "").split()
    if len(words) != 1:
        raise CommandError(f"usage: {verb} ID (or {verb} KEY); send alerts for the ids")
    return words[0]


def _call(method, ref: str, by: str):
    try:
        return method(ref, by)
    except LookupError as exc:
        raise CommandError(str(exc).strip("'\"")) from None


@hookimpl
def register_commands(registry):
    @registry.command("alerts", help="list the alerts firing now (id, age, labels, ack)")
    async def alerts(ctx):
        firing = ctx.bot.alerts.firing()
        if not firing:
            return "nothing is firing"
        now = time.time()
        lines = [f.line(now) for f in firing[:MAX_LINES]]
        if len(firing) > MAX_LINES:
            lines.append(f"… and {len(firing) - MAX_LINES} more (lcbot alerts firing)")
        return f"{len(firing)} firing:\n" + "\n".join(lines)

    @registry.command("ack", usage="ack ID", help="take a firing alert: no more re-sends")
    async def ack(ctx):
        f = _call(ctx.bot.alerts.ack, _ref(ctx, "ack"), ctx.user.name)
        if f.acked_by != ctx.user.name:
            return f"{f.name} was acknowledged by {f.acked_by} already"
        return f"acknowledged {f.name}; re-notification stopped"

    @registry.command("unack", usage="unack ID", help="give a firing alert back")
    async def unack(ctx):
        f = _call(ctx.bot.alerts.unack, _ref(ctx, "unack"), ctx.user.name)
        return f"{f.name} is unacknowledged again"

    @registry.command(
        "resolve",
        pri=Pri.ADMIN,
        usage="resolve ID",
        help="end a firing alert that never resolves by itself",
    )
    async def resolve(ctx):
        f = _call(ctx.bot.alerts.resolve, _ref(ctx, "resolve"), ctx.user.name)
        return f"resolved {f.name}; its recipients were told"
