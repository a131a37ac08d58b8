"""The README's samples are what lcbot really prints: the quick-start console session runs
in a copy of this checkout's project and is compared line by line (the host figures of
``status`` by shape)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

from tests.procs import REPO, lcbot

README = (REPO / "README.md").read_text()
FIGURES = re.compile(r"\d+(\.\d+)?")


def console_sample() -> tuple[str, list[str]]:
    """The ``$ printf … | lcbot run …`` block of the quick start: its input and output."""
    start = README.index("```console\n", README.index("It works in scripts too")) + 11
    block = README[start : README.index("\n```", start)]
    command, *output = block.splitlines()
    printf = shlex.split(command.removeprefix("$ ").split("|")[0])[1]
    return printf.encode().decode("unicode_escape"), output


def project_copy(folder: Path) -> Path:
    shutil.copy(REPO / "lcbot.toml", folder / "lcbot.toml")
    shutil.copytree(REPO / "plugins", folder / "plugins")
    return folder


def shape(line: str) -> str:
    """A status line with its host figures (uptime, load, memory, disk) made generic."""
    if not line.startswith("up "):
        return line
    head, _, interval = line.rpartition(" | interval ")
    return FIGURES.sub("N", head) + " | interval " + interval


def test_the_quick_start_console_session_is_what_lcbot_prints(tmp_path):
    text, expected = console_sample()
    result = lcbot(project_copy(tmp_path), "run", "--transport", "console", input=text)
    assert result.returncode == 0, result.stderr
    assert [shape(line) for line in result.stdout.splitlines()] == [shape(e) for e in expected]
