"""Built-in alert commands: ``mute`` / ``unmute`` (anyone, for themselves) and
``silence`` / ``unsilence`` / ``silences`` (admins, for an alert key)."""

from __future__ import annotations

import time

from lcbot.alerts import MAX_TITLE
from lcbot.commands import CmdType, CommandError
from lcbot.durations import format_duration, parse_duration
from lcbot.hookspecs import hookimpl
from lcbot.text import quote
from lcbot.users import Pri

DEFAULT_MUTE = 3600.0


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


@hookimpl
def register_commands(registry):
    @registry.command("mute", usage="mute [DURATION]", help="pause alerts to you (default 1h)")
    async def mute(ctx):
        seconds = _duration(ctx.extra) if ctx.extra else DEFAULT_MUTE
        ctx.bot.alerts.mute(ctx.user.name, seconds)
        until = time.strftime("%H:%M", time.localtime(time.time() + seconds))
        return f"alerts muted for {format_duration(seconds)} (until {until}); send unmute to end"

    @registry.command("unmute", help="receive alerts again")
    async def unmute(ctx):
        was = ctx.bot.alerts.unmute(ctx.user.name)
        return "alerts unmuted" if was else "alerts were not muted"

    @registry.command(
        "silence",
        kind=CmdType.SET,
        pri=Pri.ADMIN,
        usage="silence KEY DURATION",
        help="drop alerts with this key for a while",
    )
    async def silence(ctx):
        parts = ctx.extra.split()
        if len(parts) != 2:
            raise CommandError("usage: silence KEY DURATION (e.g. silence disk:/ 2h)")
        key, seconds = parts[0], _duration(parts[1])
        if len(key) > MAX_TITLE:
            raise CommandError(f"an alert key is at most {MAX_TITLE} characters")
        ctx.bot.alerts.silence(key, seconds, ctx.user.name)
        return f"silenced {key} for {format_duration(seconds)}"

    @registry.command(
        "unsilence",
        kind=CmdType.SET,
        pri=Pri.ADMIN,
        usage="unsilence KEY",
        help="end a silence",
    )
    async def unsilence(ctx):
        key = ctx.extra.split()[0]
        if ctx.bot.alerts.unsilence(key):
            return f"unsilenced {quote(key)}"
        return f"{quote(key)} was not silenced"

    @registry.command("silences", pri=Pri.ADMIN, help="list active silences")
    async def silences(ctx):
        active = ctx.bot.alerts.active_silences()
        if not active:
            return "no active silences"
        now = time.time()
        return "silences:\n" + "\n".join(
            f"{key} — {format_duration(until - now)} left (by {by})" for key, until, by in active
        )
