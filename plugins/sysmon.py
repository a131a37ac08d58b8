"""Example folder plugin: host status and a poll interval admins can change.

    status           uptime, load, memory and disk of this host, and the interval
    interval:SECONDS set the poll interval (admin)

Configuration (optional): ``[sysmon] interval = 60``.
"""

from __future__ import annotations

import os
import shutil
import threading

from lcbot import CmdType, CommandError, Pri, hookimpl

_state = {"interval": 60}
_lock = threading.Lock()


def _uptime() -> str:
    try:
        with open("/proc/uptime") as f:
            seconds = int(float(f.read().split()[0]))
    except OSError:
        return "n/a"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h {rest // 60}m"


def _memory() -> str:
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) for line in f if ":" in line}
        total, avail = info["MemTotal"], info["MemAvailable"]
    except (OSError, KeyError, ValueError):
        return "n/a"
    return f"{(total - avail) / 1048576:.1f}/{total / 1048576:.1f} GiB used"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _disk(path: str = "/") -> str:
    usage = shutil.disk_usage(path)
    return f"{path} {usage.used / usage.total:.0%} of {usage.total / 2**30:.0f} GiB"


@hookimpl
def lcbot_startup(app):
    interval = app.config.section("sysmon").get("interval", 60)
    if isinstance(interval, int) and not isinstance(interval, bool) and interval > 0:
        _state["interval"] = interval


@hookimpl
def register_commands(registry):
    @registry.command("status", help="uptime, load, memory, disk and the poll interval")
    def status(ctx):
        return (
            f"up {_uptime()} | load {_load()} | mem {_memory()} | disk {_disk()} | "
            f"interval {_state['interval']}s"
        )

    @registry.command(
        "interval",
        kind=CmdType.SET,
        pri=Pri.ADMIN,
        usage="interval:SECONDS",
        help="set the poll interval in seconds",
    )
    def interval(ctx):
        try:
            seconds = int(ctx.extra)
        except ValueError:
            raise CommandError(f"'{ctx.extra}' is not a whole number of seconds") from None
        if not 1 <= seconds <= 86400:
            raise CommandError("interval must be between 1 and 86400 seconds")
        with _lock:
            _state["interval"] = seconds
        return f"interval set to {seconds}s"
