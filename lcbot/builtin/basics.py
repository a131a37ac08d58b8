"""Built-in commands every bot has: ``help``, ``whoami`` and ``quit``."""

from __future__ import annotations

from lcbot.commands import CmdType
from lcbot.hookspecs import hookimpl
from lcbot.text import quote
from lcbot.users import Pri


@hookimpl
def register_commands(registry):
    @registry.command("help", help="list the commands you may run; help NAME for one")
    def help_(ctx):
        mine = ctx.bot.commands(ctx.user)  # the commands this user may run
        if ctx.extra:
            word = ctx.extra.split()[0]
            command = next((c for c in mine if c.name == word.lower()), None)
            if command is None:
                return f"no command '{quote(word, 32)}' — send help"
            kind, pri = command.kind.name, command.pri.label
            return f"{command.usage_text}\n(type {kind}, least privilege {pri})"
        return "commands:\n" + "\n".join(c.usage_text for c in mine if not c.hidden)

    @registry.command("whoami", help="your user name and privilege")
    def whoami(ctx):
        return f"{ctx.user.name} ({ctx.user.pri.label})"

    @registry.command(
        "quit", kind=CmdType.QUIT, pri=Pri.ROOT, help="stop the bot (asks to confirm)"
    )
    def quit_(ctx):
        return "stopping: pending messages are sent first"
