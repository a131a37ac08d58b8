"""Built-in commands every bot has: ``help``, ``whoami`` and ``quit``."""

from __future__ import annotations

from lcbot.commands import CmdType
from lcbot.hookspecs import hookimpl
from lcbot.users import Pri


@hookimpl
def register_commands(registry):
    @registry.command("help", help="list the commands you may run; help NAME for one")
    def help_(ctx):
        app, user = ctx.app, ctx.user
        if ctx.extra:
            command = app.registry.get(ctx.extra.split()[0])
            if command is None or not app.dispatcher.allowed(user, command, None):
                return f"no command '{ctx.extra.split()[0]}' — send help"
            kind, pri = command.kind.name, command.pri.label
            return f"{command.usage_text}\n(type {kind}, least privilege {pri})"
        lines = [
            c.usage_text
            for c in app.registry
            if not c.hidden and app.dispatcher.allowed(user, c, None)
        ]
        return "commands:\n" + "\n".join(lines)

    @registry.command("whoami", help="your user name and privilege")
    def whoami(ctx):
        return f"{ctx.user.name} ({ctx.user.pri.label})"

    @registry.command(
        "quit", kind=CmdType.QUIT, pri=Pri.ROOT, help="stop the bot (asks to confirm)"
    )
    def quit_(ctx):
        return "stopping: pending messages are sent first"
