"""``lcbot plugins list`` and ``lcbot commands list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lcbot import config
from lcbot.cli.common import (
    ConfigOption,
    JsonOption,
    escape,
    notice,
    print_json,
    stdout,
    sub_app,
)

plugins_app = sub_app("Inspect installed and folder plugins.")
commands_app = sub_app("Inspect the chat commands plugins provide.")
plugin_app = sub_app("Create a new plugin package.")


@plugin_app.command("new")
def new_plugin(
    name: Annotated[str, typer.Argument(help="Plugin name, e.g. weather.", metavar="NAME")],
    where: Annotated[
        Path, typer.Option("--dir", help="Folder to create it in (default: here).")
    ] = Path("."),
) -> None:
    """Create lcbot-plugin-NAME/: a package with commands, tests and a README."""
    from lcbot.scaffold import create

    root = create(name, where)
    out = stdout()
    out.print(f"created {escape(str(root))}")
    out.print(f"next: pip install -e {escape(str(root))} && lcbot commands list")


def _load(config_path):
    """The plugins of the configuration, or, when no --config / $LCBOT_CONFIG was given
    and there is no ./lcbot.toml, the built-in and installed ones (said on stderr)."""
    from lcbot.commands import Registry
    from lcbot.plugins import load_host

    path = config.locate(config_path)
    if config_path is None and not path.exists():
        notice(f"no configuration file at {path}: showing built-in and installed plugins only")
        dirs, disable = (), ()
    else:
        cfg = config.load(config_path)
        dirs, disable = cfg.plugins.dirs, cfg.plugins.disable
    host = load_host(dirs, disable)
    registry = host.register_commands(Registry())
    return host, registry


@plugins_app.command("list")
def list_plugins(json_output: JsonOption = False, config_path: ConfigOption = None) -> None:
    """List plugins: source, version, hooks, commands and status."""
    host, _ = _load(config_path)
    records = list(host.records.values())
    if json_output:
        print_json([r.to_json() for r in records])
        return
    from rich.table import Table

    table = Table("name", "source", "version", "hooks", "commands", "status")
    for r in records:
        status = {"ok": "[green]ok[/]", "disabled": "[dim]disabled[/]"}.get(
            r.status, f"[red]failed[/]: {escape(r.error or '')}"
        )
        table.add_row(
            escape(r.name),
            r.source,
            escape(r.version or ""),
            ", ".join(r.hooks),
            escape(", ".join(r.commands)),
            status,
        )
    stdout().print(table)


@commands_app.command("list")
def list_commands(json_output: JsonOption = False, config_path: ConfigOption = None) -> None:
    """List chat commands: name, type, least privilege, plugin and help."""
    _, registry = _load(config_path)
    if json_output:
        print_json([c.to_json() for c in registry])
        return
    from rich.table import Table

    table = Table("name", "type", "least privilege", "plugin", "help")
    for c in registry:
        table.add_row(escape(c.name), c.kind.name, c.pri.label, escape(c.plugin), escape(c.help))
    stdout().print(table)
