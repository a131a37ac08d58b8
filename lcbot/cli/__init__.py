"""The ``lcbot`` command line (typer). Sub-command modules import heavy things lazily."""

from __future__ import annotations

from typing import Annotated

import typer

from lcbot import __version__
from lcbot.cli import alert_cmds, config_cmds, plugins_cmds, run_cmd, users
from lcbot.cli.common import LcbotGroup

app = typer.Typer(
    cls=LcbotGroup,
    help="lcbot: watch and steer long-running jobs from WeChat.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: typer's rich help imports ~50 ms of modules on every `--help`.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lcbot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show version."),
    ] = False,
) -> None:
    """lcbot: watch and steer long-running jobs from WeChat."""


app.command("run")(run_cmd.run)
app.command("init")(config_cmds.init)
app.add_typer(users.app, name="user")
app.add_typer(config_cmds.app, name="config")
app.add_typer(plugins_cmds.plugins_app, name="plugins")
app.add_typer(plugins_cmds.commands_app, name="commands")
app.add_typer(plugins_cmds.plugin_app, name="plugin")
app.command("alert")(alert_cmds.alert)
app.add_typer(alert_cmds.alerts_app, name="alerts")
app.add_typer(alert_cmds.outbox_app, name="outbox")


def main() -> None:
    """Console-script entry point."""
    app()
