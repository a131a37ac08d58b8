"""Built-in group chat commands (admins): ``room alerts LEVEL`` and ``room off``, sent in
the group that should (or should no longer) receive alerts, and ``rooms`` to list them."""

from __future__ import annotations

from lcbot.commands import CmdType, CommandError
from lcbot.hookspecs import hookimpl
from lcbot.schema import LEVELS
from lcbot.users import Pri

USAGE = f"room alerts LEVEL ({', '.join(LEVELS)}) or room off"
IN_GROUP = "send it in the group chat that should get alerts (@-mention the bot there)"


def levels_from(level: str) -> str:
    """``warning`` → ``warning and critical alerts``."""
    chosen = LEVELS[LEVELS.index(level) :]
    return " and ".join(chosen) + " alerts"


@hookimpl
def register_commands(registry):
    @registry.command(
        "room",
        kind=CmdType.SET,
        pri=Pri.ADMIN,
        usage="room alerts LEVEL | room off",
        help="in a group chat: send it alerts of LEVEL and above; off: stop",
    )
    def room(ctx):  # a plain def: it writes lcbot.toml
        words = ctx.extra.lower().split()
        if ctx.room_id is None:
            raise CommandError(IN_GROUP)
        if words == ["off"]:
            was = ctx.bot.rooms.stop_alerts(ctx.room_id)
            return f"{was.label} gets no more alerts" if was else "this group got no alerts"
        if len(words) != 2 or words[0] != "alerts" or words[1] not in LEVELS:
            raise CommandError(f"usage: {USAGE}")
        stored = ctx.bot.rooms.set_alerts(ctx.room_id, words[1], ctx.room_topic)
        return f"{stored.label} now gets {levels_from(stored.alerts)}"

    @registry.command("rooms", pri=Pri.ADMIN, help="list the group chats that get alerts")
    def rooms(ctx):
        listed = list(ctx.bot.rooms)
        if not listed:
            return "no group chat gets alerts; send room alerts LEVEL in one"
        return "group chats getting alerts:\n" + "\n".join(
            f"{r.topic or '(no topic)'} — {r.id} — {r.alerts} and above" for r in listed
        )
