"""``lcbot init`` and ``lcbot config check``."""

from __future__ import annotations

import contextlib
import getpass
from pathlib import Path
from typing import Annotated

import typer

from lcbot import config
from lcbot.cli.common import ConfigOption, escape, stdout, sub_app
from lcbot.errors import ConfigError
from lcbot.users import check_identifier

app = sub_app("Inspect the configuration.")


def _default_root() -> str:
    try:
        return check_identifier(getpass.getuser(), "user name")
    except Exception:
        return "root"


def init(
    root: Annotated[
        str | None,
        typer.Option("--root", help="Name of the first root user (default: your login name)."),
    ] = None,
    example: Annotated[
        bool,
        typer.Option(
            "--example/--no-example",
            help="Also write the example plugin plugins/sysmon.py (status, interval).",
        ),
    ] = True,
    config_path: ConfigOption = None,
) -> None:
    """Write a starter lcbot.toml with one root user, and the example plugin in plugins/
    (never overwrites a file)."""
    name = check_identifier(root or _default_root(), "user name")
    path = config.locate(config_path)
    raw = {
        "bot": {"name": "lcbot", "transport": "auto", "data_dir": ".lcbot"},
        "users": [{"name": name, "pri": "root"}],
        "plugins": {"dirs": ["plugins"], "disable": []},
    }
    config.create(path, raw)
    out = stdout()
    out.print(f"wrote {escape(str(path))} with root user {escape(name)}")
    plugin = path.parent / "plugins" / EXAMPLE
    if example and _write_example(path, plugin):
        out.print(f"wrote {escape(str(plugin))}, an example plugin: commands status, interval")
    elif example:
        out.print(f"kept {escape(str(plugin))} (it already exists)")
    out.print("next: lcbot run, then type help or status")
    out.print("more users: lcbot user add NAME --pri admin|user")


EXAMPLE = "sysmon.py"


def _write_example(config_path: Path, plugin: Path) -> bool:
    """Copy the example plugin to ``plugin`` (False if it exists). When that fails the new
    ``config_path`` is removed again, so a failed init changes nothing."""
    from lcbot import examples

    source = Path(examples.__file__).with_name(EXAMPLE).read_text(encoding="utf-8")
    folder_was_there = plugin.parent.is_dir()
    created = False
    try:
        if not folder_was_there:
            plugin.parent.mkdir()
        if plugin.exists() or plugin.is_symlink():
            return False
        with open(plugin, "x", encoding="utf-8") as handle:
            created = True
            handle.write(source)
    except OSError as exc:
        if created:
            plugin.unlink(missing_ok=True)
        if not folder_was_there:
            with contextlib.suppress(OSError):
                plugin.parent.rmdir()
        config_path.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write {plugin}: {exc.strerror or exc}; nothing was changed "
            "(lcbot init --no-example skips the example plugin)"
        ) from None
    return True


@app.command("check")
def check(config_path: ConfigOption = None) -> None:
    """Validate lcbot.toml (every section lcbot and its plugins know); print a summary."""
    cfg = config.load(config_path)  # every section of lcbot's schema is checked here
    from lcbot.ingress import IngressSettings
    from lcbot.plugins import load_host
    from lcbot.setting import Section
    from lcbot.transports.wechaty_settings import WechatySettings

    where = str(cfg.path)
    ingress = IngressSettings.from_settings(cfg.settings["ingress"])
    if ingress.enabled:
        ingress.check_exposure(where)
    host = load_host(cfg.plugins.dirs, cfg.plugins.disable)
    unknown = cfg.unknown_keys()
    for name, settings in host.config_schemas().items():
        section = Section(name, tuple(settings))
        section.load(cfg.raw.get(name), where)
        unknown += [f"{name}.{key}" for key in section.unknown_keys(cfg.raw.get(name))]
    wechat = WechatySettings.from_settings(cfg.settings["wechaty"], cfg.settings["security"])
    counts = {label: 0 for label in ("root", "admin", "user")}
    for user in cfg.users:
        counts[user.pri.label] += 1
    bound = sum(1 for u in cfg.users if u.wxid)
    out = stdout()
    out.print(f"[green]ok[/] {escape(str(cfg.path))}")
    out.print(f"  bot: {escape(cfg.bot.name)}, transport {cfg.bot.transport}")
    endpoint = escape(wechat.endpoint or "not set")
    token = "set" if wechat.token else f"not set (${wechat.token_env})"
    out.print(f"  wechat: endpoint {endpoint}, token {token}, identity by {wechat.identity}")
    out.print(f"  data_dir: {escape(str(cfg.bot.data_dir))}")
    out.print(
        f"  users: {len(cfg.users)} ({', '.join(f'{n} {k}' for k, n in counts.items())}; "
        f"{bound} bound to WeChat)"
    )
    if cfg.rooms:
        out.print(f"  rooms: {len(cfg.rooms)} group chat(s) get alerts (lcbot room list)")
    dirs = ", ".join(escape(str(d)) for d in cfg.plugins.dirs) or "none"
    out.print(f"  plugin dirs: {dirs}")
    if cfg.plugins.disable:
        out.print(f"  disabled plugins: {escape(', '.join(cfg.plugins.disable))}")
    failed = [r.name for r in host.records.values() if r.status == "failed"]
    if failed:
        out.print(f"  [yellow]warning:[/] plugins that fail to load: {escape(', '.join(failed))}")
    for key in unknown:
        out.print(f"  [yellow]warning:[/] unknown key {escape(key)} (ignored)")
    if counts["root"] == 0:
        out.print("  [yellow]warning:[/] no root user: nobody can run root commands")
