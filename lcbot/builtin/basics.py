"""Built-in commands every bot has: ``help``, ``whoami``, ``jobs`` and ``quit``."""

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
        plain = [c.usage_text for c in mine if not c.hidden and not c.plugin.startswith("job:")]
        lines = ["commands:", *plain]
        jobs: dict[str, list[str]] = {}
        for c in mine:
            if c.plugin.startswith("job:") and not c.hidden:
                jobs.setdefault(c.plugin[4:], []).append("  " + c.usage_text)
        for job, usages in jobs.items():
            lines += [f"job {job}:", *usages]
        return "\n".join(lines)

    @registry.command("jobs", help="the programs connected as jobs, and those gone lately")
    def jobs(ctx):
        lines = ctx.bot.jobs()
        return "\n".join(lines) if lines else "no jobs (a program connects with lcbot.job)"

    @registry.command("whoami", help="your user name and privilege")
    def whoami(ctx):
        return f"{ctx.user.name} ({ctx.user.pri.label})"

    @registry.command(
        "quit", kind=CmdType.QUIT, pri=Pri.ROOT, help="stop the bot (asks to confirm)"
    )
    def quit_(ctx):
        return "stopping: pending messages are sent first"
