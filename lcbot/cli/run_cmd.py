"""``lcbot run``: start the bot on the console or WeChat."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from lcbot import config
from lcbot.cli.common import ConfigOption
from lcbot.errors import UsageError

WECHAT_ENV = ("WECHATY_PUPPET_SERVICE_ENDPOINT", "WECHATY_PUPPET_SERVICE_TOKEN")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # job adds are not news


def wechat_configured(cfg: config.Config) -> bool:
    """True when a puppet-service endpoint or token is configured (env or [wechaty])."""
    section = cfg.section("wechaty")
    token_env = section.get("token_env", "WECHATY_PUPPET_SERVICE_TOKEN")
    return bool(section.get("endpoint") or any(os.environ.get(v) for v in (*WECHAT_ENV, token_env)))


def choose_transport(cfg: config.Config, requested: str) -> str:
    choice = cfg.bot.transport if requested == "auto" else requested
    if choice == "auto":
        if wechat_configured(cfg):
            return "wechaty"
        logging.getLogger("lcbot").info(
            "no WeChat puppet service configured: using the console "
            "(set WECHATY_PUPPET_SERVICE_ENDPOINT and WECHATY_PUPPET_SERVICE_TOKEN to connect)"
        )
        return "console"
    return choice


def run(
    transport: Annotated[
        str, typer.Option("--transport", "-t", help="auto, console or wechaty.", metavar="NAME")
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
    if transport not in config.TRANSPORTS:
        raise UsageError(f"unknown transport {transport!r}; use {', '.join(config.TRANSPORTS)}")
    setup_logging(log_level)
    cfg = config.load(config_path)
    chosen = choose_transport(cfg, transport)
    if chosen == "wechaty":
        raise UsageError(
            "the WeChat transport is not part of this version yet; use --transport console"
        )
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

    import asyncio

    from lcbot.app import App
    from lcbot.transports.console import ConsoleTransport

    app = App(cfg, ConsoleTransport(user.name))
    raise typer.Exit(asyncio.run(app.run()))
