"""Example folder plugin: host status, a poll interval admins can change, and disk alerts.

    status           uptime, load, memory and disk of this host, and the interval
    interval:SECONDS set the poll interval (admin); the disk check follows it

Every ``interval`` seconds the disk usage of each configured path is checked: above
``disk_warn`` percent raises a warning alert keyed ``disk:<path>`` (repeats are
de-duplicated by the alert router); back under raises the matching resolved alert. The
host's figures are recorded as metrics of source ``host`` each time — ``load`` (1 min),
``memory`` and ``disk`` (percent used, of the first path) — so ``plot load`` charts them.

Its state lives on the bot, not in this module: ``bot.config`` is the checked ``[sysmon]``
section, ``bot.state`` keeps the interval set in chat (it survives a restart and wins over
``[sysmon] interval``) and the paths currently over the limit.

Configuration (all optional)::

    [sysmon]
    interval = 60        # seconds
    paths = ["/"]
    disk_warn = 90       # percent
"""

from __future__ import annotations

import contextlib
import os
import shutil

from lcbot import CmdType, CommandError, Pri, Setting, hookimpl, quote

JOB = "disk check"


@hookimpl
def config_schema():
    return [
        Setting("interval", int, 60, "seconds between disk checks", min=1, max=86400),
        Setting("paths", list, ("/",), "paths whose disk usage is checked"),
        Setting("disk_warn", float, 90.0, "percent full that raises a warning", min=0, max=100),
    ]


def _uptime() -> str:
    try:
        with open("/proc/uptime") as f:
            seconds = int(float(f.read().split()[0]))
    except OSError:
        return "n/a"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h {rest // 60}m"


def _meminfo() -> tuple[int, int] | None:
    """Total and available memory in KiB."""
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) for line in f if ":" in line}
        return info["MemTotal"], info["MemAvailable"]
    except (OSError, KeyError, ValueError):
        return None


def _memory() -> str:
    if (found := _meminfo()) is None:
        return "n/a"
    total, avail = found
    return f"{(total - avail) / 1048576:.1f}/{total / 1048576:.1f} GiB used"


def host_figures(paths: list[str]) -> dict[str, float]:
    """Load (1 min), memory and disk use (percent, of the first path): what can be read."""
    figures: dict[str, float] = {}
    with contextlib.suppress(OSError):
        figures["load"] = os.getloadavg()[0]
    if (found := _meminfo()) is not None and found[0]:
        figures["memory"] = 100.0 * (found[0] - found[1]) / found[0]
    with contextlib.suppress(OSError, IndexError):
        figures["disk"] = disk_percent(paths[0])
    return figures


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


def interval_of(bot) -> int:
    """The interval set in chat, else the configured one."""
    return bot.state.get("interval", bot.config["interval"])


def check_disks(bot) -> None:
    """One disk check: warn above the threshold, resolve when back under."""
    limit = bot.config["disk_warn"]
    over = set(bot.state.get("over", []))
    for path in bot.config["paths"]:
        key = f"disk:{path}"
        try:
            percent = disk_percent(path)
        except OSError as exc:
            bot.alert(f"cannot check disk {path}: {exc}", level="warning", key=key)
            continue
        if percent >= limit:
            over.add(path)
            bot.alert(
                f"disk {path} is {percent:.0f}% full (limit {limit:.0f}%)",
                level="warning",
                title="disk",
                key=key,
            )
        elif path in over:
            over.discard(path)
            bot.alert(
                f"disk {path} is back to {percent:.0f}%",
                level="warning",
                title="disk",
                key=key,
                resolved=True,
            )
    if sorted(over) != bot.state.get("over", []):
        bot.state["over"] = sorted(over)


def check(bot) -> None:
    """What runs every interval: the disk check, then the host's metrics."""
    check_disks(bot)
    record_host(bot)


def record_host(bot) -> None:
    for name, value in host_figures(bot.config["paths"]).items():
        bot.metric(name, value, source="host")  # `plot load` charts them


def schedule(bot, seconds: int) -> None:
    bot.every(seconds, lambda: check(bot), name=JOB)  # same name: replaces the job


@hookimpl
def lcbot_startup(bot):
    record_host(bot)  # a first point at once
    schedule(bot, interval_of(bot))


@hookimpl
def register_commands(registry):
    @registry.command("status", help="uptime, load, memory, disk and the poll interval")
    def status(ctx):
        return (
            f"up {_uptime()} | load {_load()} | mem {_memory()} | disk {_disk()} | "
            f"interval {interval_of(ctx.bot)}s"
        )

    @registry.command(
        "interval",
        kind=CmdType.SET,
        pri=Pri.ADMIN,
        usage="interval:SECONDS",
        help="set the poll interval in seconds",
    )
    def interval(ctx):
        if not ctx.extra.isdigit() or len(ctx.extra) > 6:
            raise CommandError(f"'{quote(ctx.extra)}' is not a whole number of seconds")
        seconds = int(ctx.extra)
        if not 1 <= seconds <= 86400:
            raise CommandError("interval must be between 1 and 86400 seconds")
        ctx.bot.state["interval"] = seconds
        schedule(ctx.bot, seconds)
        return f"interval set to {seconds}s"
