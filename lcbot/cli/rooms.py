"""``lcbot room ...``: list and remove the group chats that get alerts (``[[rooms]]``).

Rooms are added from the group itself (``room alerts LEVEL``: only there is its id known).
"""

from __future__ import annotations

from typing import Annotated

import typer

from lcbot import config
from lcbot.cli.common import ConfigOption, JsonOption, escape, print_json, stdout, sub_app

app = sub_app("List and remove the group chats that get alerts (added in the group: room alerts).")


@app.command("list")
def list_rooms(json_output: JsonOption = False, config_path: ConfigOption = None) -> None:
    """List the group chats that get alerts: id, topic, least level."""
    cfg = config.load(config_path)
    if json_output:
        print_json([r.to_json() for r in cfg.rooms])
        return
    if not cfg.rooms:
        stdout().print(
            f"no group chat gets alerts in {escape(str(cfg.path))} "
            "(an admin sends `room alerts LEVEL` in the group)"
        )
        return
    from rich.table import Table

    table = Table("id", "topic", "alerts", title=f"rooms in {cfg.path}", title_justify="left")
    for room in cfg.rooms:
        table.add_row(escape(room.id), escape(room.topic or ""), f"{room.alerts} and above")
    stdout().print(table)


@app.command("remove")
def remove(
    room_id: Annotated[str, typer.Argument(help="Room id (see: lcbot room list).", metavar="ID")],
    config_path: ConfigOption = None,
) -> None:
    """Stop alerts to a group chat (its entry leaves lcbot.toml)."""
    from lcbot.errors import UsageError
    from lcbot.rooms import remove_room

    with config.edit(config_path) as raw:
        room = remove_room(raw, room_id)
        if room is None:
            raise UsageError(f"no room with id {room_id!r} gets alerts (see: lcbot room list)")
    stdout().print(f"removed {escape(room.label)}: it gets no more alerts")
