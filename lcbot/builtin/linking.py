"""Built-in ``link NAME`` (root): link a user's WeChat from chat, with the ilink transport.

The QR link comes to root privately, to forward to NAME; scanned, expired and confirmed
follow; on confirmed NAME is bound, as by ``lcbot user link NAME``. ``link NAME NUMBER``
answers WeChat's request for the number shown on NAME's phone. With another transport the
command is hidden from ``help`` and says what it needs.
"""

from __future__ import annotations

from lcbot.commands import CommandError
from lcbot.hookspecs import hookimpl
from lcbot.users import Pri

NEEDS_ILINK = "link needs the WeChat ClawBot transport: lcbot run --transport ilink"


@hookimpl
def register_commands(registry):
    @registry.command(
        "link",
        pri=Pri.ROOT,
        usage="link NAME",
        help="link NAME's WeChat (ilink): their QR link comes to you to forward",
    )
    async def link(ctx):
        words = (ctx.extra or "").split()
        if not words or len(words) > 2:
            raise CommandError("usage: link NAME (then link NAME NUMBER if WeChat asks)")
        linking = ctx.bot.linking
        if linking is None:
            raise CommandError(NEEDS_ILINK)
        user = ctx.bot.users.by_name(words[0])
        if user is None:
            raise CommandError(f"no user named {words[0]!r} (see: lcbot user list)")
        root = ctx.user.name
        number = words[1] if len(words) == 2 else None
        return linking.start(user.name, lambda text: ctx.bot.send(root, text), number)


@hookimpl
def lcbot_startup(bot):
    if bot.linking is None:
        bot.registry.update("link", hidden=True)
