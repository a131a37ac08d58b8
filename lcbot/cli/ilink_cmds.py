"""``lcbot ilink status``: each user's WeChat ClawBot (iLink) link, as the running bot sees it.

Reads the link and state files of the data dir and the outbox, nothing else: it works while
the bot runs, and never imports aiohttp.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from lcbot import config
from lcbot.cli.common import ConfigOption, JsonOption, escape, print_json, stdout, sub_app, when

app = sub_app("The WeChat ClawBot (iLink) links of lcbot's users.")

POLLING_RECENT = 90.0  # seconds: a state file whose last poll is older is not polling


def link_rows(cfg: config.Config, now: float) -> list[dict[str, Any]]:
    """One row per user (and per link of a name no longer in lcbot.toml)."""
    from lcbot.ilink.store import LinkStore
    from lcbot.transports.ilink_state import read_state
    from lcbot.transports.ilink_window import CLOSED, Rules, Window

    values = cfg.settings["ilink"]
    rules = Rules(values["window"], values["max_replies"], values["nudge"])
    store = LinkStore(cfg.bot.data_dir)
    links = {link.user.casefold(): link for link in store.all()}
    names = [u.name for u in cfg.users]
    names += [link.user for key, link in links.items() if key not in {n.casefold() for n in names}]
    held = _pending(cfg)
    rows = []
    for name in names:
        link = links.get(name.casefold())
        data = read_state(cfg.bot.data_dir, name) if link is not None else None
        fresh = data is None or link is None or data.get("bot_id") != link.bot_id
        window = Window() if fresh else Window.from_json(data or {})
        last_poll = None if fresh else (data or {}).get("last_poll")
        polling = (
            isinstance(last_poll, int | float)
            and now - last_poll < POLLING_RECENT
            and not window.expired
        )
        state = window.state(now, rules) if link is not None else "not linked"
        hold = window.hold(name, now, rules) if link is not None else None
        rows.append(
            {
                "user": name,
                "linked": link is not None,
                "ilink_user_id": link.ilink_user_id if link else None,
                "polling": bool(polling),
                "last_poll": last_poll,
                "last_inbound": window.last_inbound,
                "window": state,
                "closed_since": window.closed_since(now, rules) if state == CLOSED else None,
                "replies_left": window.allowance(now, rules) if link is not None else 0,
                "held": held.get(name.casefold(), 0),
                "held_reason": hold[0] if hold else None,
                "backoff": round(window.backoff_left(now), 1),
            }
        )
    return rows


def _pending(cfg: config.Config) -> dict[str, int]:
    """Pending outbox rows per recipient (case-folded user names)."""
    from lcbot.cli.common import database
    from lcbot.db.outbox import pending_counts

    with database(cfg.path, create=False) as db:
        counts = {} if db is None else pending_counts(db)
    return {name.casefold(): n for name, n in counts.items()}


def _window_text(row: dict[str, Any], now: float) -> str:
    state = row["window"]
    if state == "open":
        return f"open ({row['replies_left']} left)"
    if state == "closed" and row["closed_since"]:
        return f"closed since {when(row['closed_since'])}"
    return state


@app.command("status")
def status(json_output: JsonOption = False, config_path: ConfigOption = None) -> None:
    """Per user: linked, polling, last message, reply window, held messages, back-off."""
    cfg = config.load(config_path)
    now = time.time()
    rows = link_rows(cfg, now)
    if json_output:
        print_json(rows)
        return
    if not rows:
        typer.echo("no users; add one: lcbot user add NAME")
        return
    from rich.table import Table

    table = Table("user", "linked", "polling", "last message", "window", "held", "back-off")
    for row in rows:
        held = str(row["held"]) + (f" ({row['held_reason']})" if row["held_reason"] else "")
        table.add_row(
            escape(row["user"]),
            "yes" if row["linked"] else "no",
            "yes" if row["polling"] else "no",
            when(row["last_inbound"]) or "-",
            escape(_window_text(row, now)),
            escape(held),
            f"{row['backoff']:.0f} s" if row["backoff"] else "-",
        )
    stdout().print(table)
