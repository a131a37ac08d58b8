"""Built-in alert commands: ``mute`` / ``unmute`` (anyone, for themselves) and
``silence`` / ``unsilence`` / ``silences`` (admins, for an alert key or by label matchers:
``silence host=db1 alertname=~"Disk.*" 2h maintenance window``)."""

from __future__ import annotations

import time

from lcbot.alerts import MAX_TITLE
from lcbot.commands import CmdType, CommandError
from lcbot.durations import format_duration, parse_duration
from lcbot.hookspecs import hookimpl
from lcbot.matchers import InvalidMatcher, looks_like_matcher, parse_matcher, split_words
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
        usage="silence KEY DURATION | silence MATCHER… DURATION [COMMENT]",
        help="drop alerts with this key, or whose labels match, for a while",
    )
    async def silence(ctx):
        words = split_words(ctx.extra)
        if words and looks_like_matcher(words[0]):
            return _silence_matching(ctx, words)
        parts = ctx.extra.split()
        if len(parts) != 2:
            raise CommandError(
                "usage: silence KEY DURATION (e.g. silence disk:/ 2h) or silence MATCHER… "
                'DURATION [COMMENT] (e.g. silence host=db1 alertname=~"Disk.*" 2h upgrade)'
            )
        key, seconds = parts[0], _duration(parts[1])
        if len(key) > MAX_TITLE:
            raise CommandError(f"an alert key is at most {MAX_TITLE} characters")
        ctx.bot.alerts.silence(key, seconds, ctx.user.name)
        return f"silenced {key} for {format_duration(seconds)}"

    @registry.command(
        "unsilence",
        kind=CmdType.SET,
        pri=Pri.ADMIN,
        usage="unsilence ID|KEY",
        help="end a silence (by its id, or an alert key)",
    )
    async def unsilence(ctx):
        key = ctx.extra.split()[0]
        ended = ctx.bot.alerts.expire_silence(key)
        if ended is not None:
            return f"unsilenced {ended.id} ({ended.describe()})"
        if ctx.bot.alerts.unsilence(key):
            return f"unsilenced {quote(key)}"
        return f"{quote(key)} was not silenced"

    @registry.command("silences", pri=Pri.ADMIN, help="list active silences")
    async def silences(ctx):
        active = ctx.bot.alerts.active_silences()
        matching = ctx.bot.alerts.matcher_silences()
        if not active and not matching:
            return "no active silences"
        now = time.time()
        lines = [
            f"{s.id} {s.describe()} — {format_duration(s.until - now)} left "
            f"(by {s.author}{': ' + s.comment if s.comment else ''})"
            for s in matching
        ]
        lines += [
            f"{key} — {format_duration(until - now)} left (by {by})" for key, until, by in active
        ]
        return "silences:\n" + "\n".join(lines)


def _silence_matching(ctx, words: list[str]) -> str:
    """``silence MATCHER… DURATION [COMMENT]``: matchers first, then a duration."""
    matchers = []
    while words and looks_like_matcher(words[0]):
        try:
            matchers.append(parse_matcher(words.pop(0)))
        except InvalidMatcher as exc:
            raise CommandError(str(exc)) from None
    if not words:
        raise CommandError("silence: give a duration after the matchers (e.g. 2h)")
    seconds = _duration(words.pop(0))
    comment = " ".join(words) or None
    try:
        made = ctx.bot.alerts.silence_matching(matchers, seconds, ctx.user.name, comment)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return f"silenced {made.describe()} for {format_duration(seconds)} (id {made.id})"
