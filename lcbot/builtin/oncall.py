"""Built-in on-call commands: ``oncall`` (anyone: who is on call, until when, the rota) and
``oncall take`` (admins: on call themselves until the next handover)."""

from __future__ import annotations

from lcbot.commands import CommandError
from lcbot.hookspecs import hookimpl
from lcbot.users import Pri


@hookimpl
def register_commands(registry):
    @registry.command(
        "oncall",
        usage="oncall [take]",
        help="who is on call and until when; take (admin): you, until the next handover",
    )
    async def oncall(ctx):
        state = ctx.bot.oncall
        if state is None:
            raise CommandError("on call is not available in this bot")
        word = (ctx.extra or "").strip().lower()
        if not word:
            return state.describe()
        if word != "take":
            raise CommandError("usage: oncall, or oncall take")
        if ctx.user.pri > Pri.ADMIN:
            raise CommandError("only an admin can take on call")
        before = state.on_call()
        shift = state.take(ctx.user.name, ctx.user.name)
        until = state.rota.local(shift.until).strftime("%a %d %b %H:%M")
        if before and before != ctx.user.name:
            ctx.bot.send(before, f"{ctx.user.name} took on call from you until {until}")
        return f"you are on call until {until} ({state.rota.zone_name})"
