"""``lcbot watch [--name N] -- CMD ARGS…``: run any program as a job (``lcbot.watch``)."""

from __future__ import annotations

from typing import Annotated

import typer

from lcbot.cli.common import ConfigOption


def watch(
    command: Annotated[
        list[str], typer.Argument(help="The program and its arguments.", metavar="CMD [ARGS]...")
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Job name (default: the program's, train.py → train)."),
    ] = None,
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds from SIGTERM to SIGKILL on `stop`.", min=0)
    ] = 10.0,
    config_path: ConfigOption = None,
) -> None:
    """Run CMD as a job: output unchanged, signals forwarded, CMD's exit status; in chat
    `NAME tail [N]`, `NAME stop`, and one alert when it ends."""
    from lcbot.watch import run

    status = run(list(command), name, grace, str(config_path) if config_path else None)
    raise typer.Exit(status)


# everything from CMD on is CMD's: `lcbot watch python -u train.py -c x` needs no `--`
watch.command_options = {  # type: ignore[attr-defined]
    "context_settings": {"allow_interspersed_args": False, "ignore_unknown_options": True}
}
