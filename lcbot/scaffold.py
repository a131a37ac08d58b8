"""``lcbot plugin new NAME``: the files of a new ``lcbot-plugin-NAME`` package."""

from __future__ import annotations

import re
from pathlib import Path

from lcbot.errors import UsageError

NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "lcbot-plugin-{name}"
version = "0.1.0"
description = "{name}: an lcbot plugin"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["lcbot"]

[project.optional-dependencies]
test = ["pytest>=8"]

# This is what makes lcbot load the plugin once the package is installed.
[project.entry-points.lcbot]
{name} = "{module}"

[tool.setuptools]
packages = ["{module}"]
"""

MODULE = '''\
"""{name}: an lcbot plugin.

Commands:
    {name}              show the current setting (anyone)
    {name}-set:VALUE    change it (admins); kept across restarts

State lives on the bot (``bot.state``, ``bot.config``), never in module globals, so two
bots in one process each have their own.
"""

from lcbot import CmdType, CommandError, Pri, Setting, hookimpl

__version__ = "0.1.0"


@hookimpl
def config_schema():
    """The [{name}] section of lcbot.toml, checked by lcbot (see `lcbot config check`)."""
    return [Setting("setting", str, "default", "the value shown until someone changes it")]


def current(bot):
    """The value set in chat, else the configured one."""
    return bot.state.get("setting", bot.config["setting"])


@hookimpl
def register_commands(registry):
    @registry.command(
        "{name}",
        kind=CmdType.GET,
        pri=Pri.USER,
        help="show the {name} setting",
    )
    def show(ctx):
        return f"{name}: {{current(ctx.bot)}}"

    @registry.command(
        "{name}-set",
        kind=CmdType.SET,
        pri=Pri.ADMIN,
        usage="{name}-set:VALUE",
        help="change the {name} setting",
    )
    def change(ctx):
        value = ctx.extra.strip()
        if len(value) > 100:
            raise CommandError("the value is too long (100 characters at most)")
        ctx.bot.state["setting"] = value
        return f"{name} set to {{value}}"


@hookimpl
def lcbot_startup(bot):
    """Start work here: schedule checks with bot.every / bot.cron."""
    bot.log.info("{name} ready: %s", current(bot))
'''

TEST = '''\
"""Tests for {name}, on a real bot (the ``lcbot_bot`` fixture comes with lcbot)."""

import {module}

USERS = {{"alice": "admin", "dave": "admin", "bob": "user"}}


def test_show_and_change(lcbot_bot):
    bot = lcbot_bot(plugins=[{module}], users=USERS)
    assert bot.send("bob", "{name}") == ["{name}: default"]
    assert bot.send("alice", "{name}-set:42") == ["{name} set to 42"]
    assert bot.send("bob", "{name}") == ["{name}: 42"]
    # other admins are told about the change
    assert bot.messages_to("dave") == ["alice set {name}-set: 42"]


def test_only_admins_change_it(lcbot_bot):
    bot = lcbot_bot(plugins=[{module}], users=USERS)
    assert bot.send("bob", "{name}-set:1") == ["not allowed: {name}-set"]
    (usage,) = bot.send("alice", "{name}-set")
    assert usage.startswith("usage: {name}-set:VALUE")


def test_configured_value_and_restart(lcbot_bot):
    bot = lcbot_bot(plugins=[{module}], users=USERS, config={{"{name}": {{"setting": "hi"}}}})
    assert bot.send("bob", "{name}") == ["{name}: hi"]
    bot.send("alice", "{name}-set:kept")
    again = bot.restart()  # the same data dir: the value set in chat survives
    assert again.send("bob", "{name}") == ["{name}: kept"]
'''

README = """\
# lcbot-plugin-{name}

An [lcbot](https://pypi.org/project/lcbot/) plugin.

    pip install -e .            # lcbot now loads it: see `lcbot plugins list`
    pip install -e '.[test]' && pytest

Commands: `{name}` (anyone) shows the setting, `{name}-set:VALUE` (admins) changes it.
Optional configuration in lcbot.toml:

    [{name}]
    setting = "hello"

Edit `{module}/__init__.py` to add commands (`@registry.command`), alert hooks
(`on_alert`) and scheduled checks (`bot.every` in `lcbot_startup`). Keep state on the bot
(`bot.state`, persistent), never in module globals. The hook reference is in lcbot's
docs/plugins.md.
"""


def create(name: str, where: Path) -> Path:
    """Write ``lcbot-plugin-NAME/`` under ``where``; never overwrites anything."""
    if not NAME_RE.fullmatch(name) or len(name) > 40:
        raise UsageError(
            f"invalid plugin name {name!r}: lower-case letters and digits, words joined by "
            "- or _, starting with a letter (e.g. weather, disk-watch)"
        )
    name = name.replace("_", "-")
    module = "lcbot_plugin_" + name.replace("-", "_")
    if not where.is_dir():
        raise UsageError(f"--dir {where}: not an existing folder")
    root = where / f"lcbot-plugin-{name}"
    if root.exists():
        raise UsageError(f"{root} already exists; not overwriting it")
    files = {
        "pyproject.toml": PYPROJECT,
        f"{module}/__init__.py": MODULE,
        f"tests/test_{module}.py": TEST,
        "README.md": README,
    }
    root.mkdir(parents=True)
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(name=name, module=module))
    return root
