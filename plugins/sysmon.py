"""Example folder plugin: host status, a poll interval admins can change, and disk alerts.

    status           uptime, load, memory and disk of this host, and the interval
    interval:SECONDS set the poll interval (admin); the disk check follows it

Every ``interval`` seconds the disk usage of each configured path is checked: above
``disk_warn`` percent raises a warning alert keyed ``disk:<path>`` (repeats are
de-duplicated by the alert router); back under raises the matching resolved alert.

Configuration (all optional)::

    [sysmon]
    interval = 60        # seconds
    paths = ["/"]
    disk_warn = 90       # percent
"""

from __future__ import annotations

import os
import shutil
import threading

from lcbot import CmdType, CommandError, Pri, hookimpl

_state: dict = {"interval": 60, "paths": ["/"], "disk_warn": 90.0, "job": None, "app": None}
_over: set[str] = set()
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


def disk_percent(path: str) -> float:
    usage = shutil.disk_usage(path)
    return 100.0 * usage.used / usage.total


def _disk(path: str = "/") -> str:
    usage = shutil.disk_usage(path)
    return f"{path} {usage.used / usage.total:.0%} of {usage.total / 2**30:.0f} GiB"


def check_disks() -> None:
    """One disk check: warn above the threshold, resolve when back under."""
    app = _state["app"]
    for path in _state["paths"]:
        try:
            percent = disk_percent(path)
        except OSError as exc:
            app.alert(
                f"cannot check disk {path}: {exc}",
                level="warning",
                key=f"disk:{path}",
                source="sysmon",
            )
            continue
        if percent >= _state["disk_warn"]:
            _over.add(path)
            app.alert(
                f"disk {path} is {percent:.0f}% full (limit {_state['disk_warn']:.0f}%)",
                level="warning",
                title="disk",
                key=f"disk:{path}",
                source="sysmon",
            )
        elif path in _over:
            _over.discard(path)
            app.alert(
                f"disk {path} is back to {percent:.0f}%",
                level="warning",
                title="disk",
                key=f"disk:{path}",
                resolved=True,
                source="sysmon",
            )


def _positive_number(section: dict, name: str, default: float) -> float:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"[sysmon] {name} must be a number > 0, not {value!r}")
    return value


@hookimpl
def lcbot_startup(app):
    section = app.config.section("sysmon")
    _state["interval"] = int(_positive_number(section, "interval", 60))
    _state["disk_warn"] = float(_positive_number(section, "disk_warn", 90))
    paths = section.get("paths", ["/"])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ValueError(f"[sysmon] paths must be a list of paths, not {paths!r}")
    _state["paths"] = paths
    _state["app"] = app
    _state["job"] = app.every(_state["interval"], check_disks, name="sysmon disk check")


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
            if _state["job"] is not None:
                _state["job"].reschedule(seconds)
        return f"interval set to {seconds}s"
