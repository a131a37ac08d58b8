"""``lcbot user ...``: add, remove, list and promote/demote users in lcbot.toml; link and
unlink their WeChat through iLink (``lcbot.cli.linking``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from lcbot import config
from lcbot.cli.common import ConfigOption, JsonOption, escape, print_json, stdout, sub_app
from lcbot.errors import UsageError
from lcbot.users import PRI_NAMES, Pri

if TYPE_CHECKING:
    import sqlite3

app = sub_app("Manage the users who may talk to the bot.")

PriArgument = Annotated[
    str, typer.Argument(help=f"Privilege: {', '.join(PRI_NAMES)}.", metavar="PRI")
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Allow removing or demoting the last root user.")
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="iLink API base URL (default: [ilink] base_url, else the official service).",
        metavar="URL",
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", help="Seconds the QR link may take.", metavar="SECONDS", min=1),
]


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name (no spaces).", metavar="NAME")],
    pri: Annotated[str, typer.Option("--pri", help="Privilege.", metavar="|".join(PRI_NAMES))],
    wxid: Annotated[
        str | None,
        typer.Option("--wxid", help="WeChat contact id of the user, if known.", metavar="ID"),
    ] = None,
    link: Annotated[
        bool, typer.Option("--link", help="Then link their WeChat by QR code (iLink).")
    ] = False,
    base_url: BaseUrlOption = None,
    timeout: TimeoutOption = 480.0,
    config_path: ConfigOption = None,
) -> None:
    """Add a user."""
    from lcbot import pairing
    from lcbot.users import add_user

    level = Pri.parse(pri)
    if link and wxid is not None:
        raise UsageError("--link and --wxid exclude each other (a link records the iLink id)")
    if link:  # a bad URL fails before anything is added
        from lcbot.cli.linking import configured_base_url

        configured_base_url(config.load(config_path), base_url)
    with _pairing_db(config_path) as db:  # a broken data_dir or database fails here, first
        with config.edit(config_path) as raw:
            user = add_user(raw, name, level, wxid)
        pairing.revoke(db, user.name)  # codes of an earlier user of this name
        code = pairing.issue(db, user.name) if wxid is None and not link else None
    out = stdout()
    out.print(f"added {escape(user.name)} ({user.pri.label})")
    if code is not None:
        out.print(f"pairing code for {escape(user.name)} (valid 24 h, single use): {code}")
        out.print(f"{escape(user.name)} sends `bind {code}` to the bot on WeChat")
    if link:
        _link(config_path, user.name, base_url, timeout)


@app.command("link")
def link_cmd(
    name: Annotated[str, typer.Argument(help="User whose WeChat to link.", metavar="NAME")],
    base_url: BaseUrlOption = None,
    timeout: TimeoutOption = 480.0,
    config_path: ConfigOption = None,
) -> None:
    """Link a user's WeChat (iLink, the ClawBot channel): they scan a QR code."""
    _link(config_path, name, base_url, timeout)


def _link(config_path, name: str, base_url: str | None, timeout: float) -> None:
    from lcbot.cli.linking import link_user

    cfg = config.load(config_path)
    user = _user(cfg, name)
    try:
        link_user(cfg, user, base_url, timeout)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    who = escape(user.name)
    stdout().print(
        f"{who} is linked: ask {who} to send any message to the bot — "
        "WeChat lets the bot write only after that"
    )


@app.command("unlink")
def unlink(
    name: Annotated[str, typer.Argument(help="User whose link to forget.", metavar="NAME")],
    config_path: ConfigOption = None,
) -> None:
    """Forget a user's iLink link (its token and state; the ilink id in lcbot.toml)."""
    from lcbot.ilink.store import LinkStore
    from lcbot.users import set_ilink

    cfg = config.load(config_path)
    user = _user(cfg, name)
    if user.ilink is not None:
        with config.edit(config_path) as raw:
            set_ilink(raw, user.name, None)
    removed = LinkStore(cfg.bot.data_dir).remove(user.name)
    who = escape(user.name)
    linked = removed or user.ilink is not None
    stdout().print(f"{who} is unlinked" if linked else f"{who} was not linked")


def _user(cfg, name: str):
    from lcbot.users import find_user

    user = find_user(cfg.users, name)
    if user is None:
        raise UsageError(f"no user named {name!r} (see: lcbot user list)")
    return user


@contextlib.contextmanager
def _pairing_db(config_path) -> Iterator[sqlite3.Connection]:
    """The database, open for the block; damage met in the block is reported as such."""
    from lcbot.db import DB_NAME, connect, reporting

    path = config.load(config_path).bot.data_dir / DB_NAME
    db = connect(path, tables=("pairing",))  # a large file: only the table written here
    try:
        with reporting(path):
            yield db
    finally:
        db.close()


@app.command("invite")
def invite(
    name: Annotated[str, typer.Argument(help="User to invite.", metavar="NAME")],
    json_output: JsonOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Issue a fresh one-time pairing code for a user (earlier codes stop working)."""
    from lcbot import pairing

    cfg = config.load(config_path)
    user = _user(cfg, name)
    with _pairing_db(config_path) as db:
        code = pairing.issue(db, user.name)
    if json_output:
        print_json({"user": user.name, "code": code, "valid_seconds": 86400})
        return
    out = stdout()
    out.print(f"pairing code for {escape(user.name)} (valid 24 h, single use): {code}")
    out.print(f"{escape(user.name)} sends `bind {code}` to the bot on WeChat")
    if user.wxid:
        out.print(f"note: {escape(user.name)} is bound already; binding again replaces the id")


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="User to remove.", metavar="NAME")],
    force: ForceOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Remove a user."""
    from lcbot import pairing
    from lcbot.users import remove_user

    with _pairing_db(config_path) as db:  # a broken database fails here, before the edit
        with config.edit(config_path) as raw:
            user = remove_user(raw, name, force=force)
        pairing.revoke(db, user.name)  # codes issued for the user must not bind anyone
    from lcbot.ilink.store import LinkStore

    LinkStore(config.load(config_path).bot.data_dir).remove(user.name)  # its token too
    stdout().print(f"removed {escape(user.name)}")


@app.command("set-pri")
def set_pri(
    name: Annotated[str, typer.Argument(help="User to change.", metavar="NAME")],
    pri: PriArgument,
    force: ForceOption = False,
    config_path: ConfigOption = None,
) -> None:
    """Promote or demote a user."""
    from lcbot.users import set_pri as set_user_pri

    level = Pri.parse(pri)
    with config.edit(config_path) as raw:
        before, after = set_user_pri(raw, name, level, force=force)
    stdout().print(f"{escape(after.name)}: {before.pri.label} → {after.pri.label}")


@app.command("list")
def list_users(json_output: JsonOption = False, config_path: ConfigOption = None) -> None:
    """List users with their privilege, WeChat binding and iLink link."""
    from lcbot.ilink.store import LinkStore

    cfg = config.load(config_path)
    store = LinkStore(cfg.bot.data_dir)
    linked = {u.name: store.link_path(u.name).is_file() for u in cfg.users}
    if json_output:
        print_json([{**u.to_json(), "linked": linked[u.name]} for u in cfg.users])
        return
    from rich.table import Table

    table = Table(
        "name", "privilege", "wxid", "ilink", title=f"users in {cfg.path}", title_justify="left"
    )
    for user in cfg.users:
        if linked[user.name]:
            ilink = f"linked ({escape(user.ilink)})" if user.ilink else "linked"
        else:
            ilink = "[dim]not linked[/]"
        table.add_row(
            escape(user.name),
            user.pri.label,
            escape(user.wxid or "") or "[dim]not bound[/]",
            ilink,
        )
    console = stdout()
    console.print(table if cfg.users else f"no users in {cfg.path} (add one: lcbot user add)")
