"""``lcbot run``: start the bot on the console or WeChat (Wechaty or iLink)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from lcbot import config
from lcbot.cli.common import ConfigOption
from lcbot.errors import ConfigError, UsageError


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # job adds are not news


def wechat_settings(cfg: config.Config):
    from lcbot.transports.wechaty_settings import WechatySettings

    return WechatySettings.from_settings(cfg.settings["wechaty"], cfg.settings["security"])


AUTO_CONSOLE = (
    "no WeChat puppet service configured: using the console "
    "(set WECHATY_PUPPET_SERVICE_ENDPOINT and WECHATY_PUPPET_SERVICE_TOKEN to connect)"
)


def choose_transport(cfg: config.Config, requested: str) -> str:
    """``--transport``, else ``[bot] transport``; ``auto``: WeChat when configured."""
    choice = cfg.bot.transport if requested == "auto" else requested
    if choice == "auto":
        return "wechaty" if wechat_settings(cfg).configured else "auto-console"
    return choice


def run(
    transport: Annotated[
        str,
        typer.Option("--transport", "-t", help="auto, console, wechaty or ilink.", metavar="NAME"),
    ] = "auto",
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as", help="Console: the user typing (default: the first root user).", metavar="NAME"
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", envvar="LCBOT_LOG_LEVEL", help="debug, info, warning…")
    ] = "info",
    config_path: ConfigOption = None,
) -> None:
    """Run the bot until quit, Ctrl-C, SIGTERM or (console) the end of input."""
    from lcbot.schema import TRANSPORTS

    if transport not in TRANSPORTS:
        raise UsageError(f"unknown transport {transport!r}; use {', '.join(TRANSPORTS)}")
    setup_logging(log_level)
    cfg = config.load(config_path)
    chosen = choose_transport(cfg, transport)
    if chosen == "wechaty":
        from lcbot.transports.wechaty import WechatyTransport

        settings = wechat_settings(cfg)
        if not settings.configured:
            raise UsageError(
                "--transport wechaty needs WECHATY_PUPPET_SERVICE_ENDPOINT (or [wechaty] "
                f"endpoint) and the token in ${settings.token_env}"
            )
        if settings.self_user and not any(u.name == settings.self_user for u in cfg.users):
            raise ConfigError(
                f"{cfg.path}: wechaty.self_user: no user named {settings.self_user!r}"
            )
        if settings.identity == "name":
            logging.getLogger("lcbot").warning(
                '[security] identity = "name": users are recognised by display name, which '
                'anyone can copy; use the default identity = "id" with pairing codes'
            )
        bot_transport = WechatyTransport(settings, cfg.bot.data_dir)
    elif chosen == "ilink":
        from lcbot.transports.ilink import IlinkSettings, IlinkTransport

        settings = IlinkSettings.from_settings(cfg.settings["ilink"])
        bot_transport = IlinkTransport(settings, cfg.bot.data_dir)
    else:
        hint = AUTO_CONSOLE if chosen == "auto-console" else None
        bot_transport = console_transport(cfg, as_user, hint)

    import asyncio

    from lcbot.app import App

    app = App(cfg, bot_transport)
    raise typer.Exit(asyncio.run(app.run()))


def console_transport(cfg: config.Config, as_user: str | None, hint: str | None = None):
    from lcbot.transports.console import ConsoleTransport
    from lcbot.users import Directory

    directory = Directory(cfg.users)
    if as_user is not None:
        user = directory.by_name(as_user)
        if user is None:
            raise UsageError(f"--as {as_user!r}: no such user (see: lcbot user list)")
    else:
        user = directory.first_root()
        if user is None:
            raise UsageError("no root user to type as: add one, or pass --as NAME")
    return ConsoleTransport(user.name, hint=hint)
