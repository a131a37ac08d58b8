"""``lcbot wechat qr`` and ``lcbot wechat doctor``: log the bot in, check the connection.

``qr`` only reads the running bot's state file (lcbot.login_file); it never imports
wechaty. ``doctor`` talks to the puppet service itself (lcbot.wechat_doctor).
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from lcbot import config
from lcbot.cli.common import ConfigOption, JsonOption, escape, print_json, stdout, sub_app

app = sub_app("Log the bot in to WeChat and check its puppet service.")


def scannable(state: dict[str, Any] | None, now: float) -> bool:
    """A code the user can scan now."""
    if state is None or state["state"] != "awaiting_scan" or not state["qrcode"]:
        return False
    return state["expires"] is None or state["expires"] > now


@app.command("qr")
def qr(json_output: JsonOption = False, config_path: ConfigOption = None) -> None:
    """Show the login QR code of the running bot (exit 0), or say its state (exit 1)."""
    from lcbot.login_file import QR_PNG, describe, read_login_state

    cfg = config.load(config_path)
    state = read_login_state(cfg.bot.data_dir)
    now = time.time()
    ok = scannable(state, now)
    if json_output:
        print_json(state)
        raise typer.Exit(0 if ok else 1)
    out = stdout()
    if not ok:
        out.print(escape(describe(state, str(cfg.path))))
        raise typer.Exit(1)
    assert state is not None
    from lcbot.qr import terminal_block

    expires = state["expires"]
    left = f" (expires in ~{max(1, round((expires - now) / 60))} min)" if expires else ""
    out.print(f"Scan with WeChat to log in to lcbot{left}")
    sys.stdout.flush()
    sys.stdout.write(terminal_block(state["qrcode"]) + "\n")  # raw: rich would re-wrap it
    sys.stdout.flush()
    out.print(f"or open {escape(state['url'] or '')}")
    png = cfg.bot.data_dir / QR_PNG
    if png.is_file():
        out.print(f"image: {escape(str(png))}")


@app.command("doctor")
def doctor(
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, max=120, help="Seconds to wait for each network step."),
    ] = 5.0,
    config_path: ConfigOption = None,
) -> None:
    """Check the puppet service lcbot connects to; exit 0 when lcbot can use it."""
    from lcbot.wechat_doctor import run_doctor

    cfg = config.load(config_path)
    raise typer.Exit(run_doctor(cfg, timeout=timeout, echo=typer.echo))
