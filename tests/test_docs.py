"""Documentation stays true: every hookspec is documented with its exact signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import lcbot
from lcbot import hookspecs

DOC = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
HOOKS = [
    name
    for name, fn in vars(hookspecs).items()
    if inspect.isfunction(fn) and hasattr(fn, "lcbot_spec")
]


def test_there_are_hooks():
    assert {"register_commands", "authorize", "on_alert", "lcbot_startup"} <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_its_signature(name):
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    assert f"### `{name}({params})`" in DOC, f"docs/plugins.md lacks a heading for {name}"


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_has_docstring(name):
    assert (getattr(hookspecs, name).__doc__ or "").strip()


def test_documented_hooks_exist():
    documented = re.findall(r"^### `(\w+)\(", DOC, flags=re.M)
    assert sorted(documented) == sorted(HOOKS)


@pytest.mark.parametrize("name", [n for n in lcbot.__all__ if not n.startswith("_")])
def test_every_public_name_is_documented(name):
    assert f"`{name}" in DOC, f"docs/plugins.md does not mention lcbot.{name}"


# --- the configuration table is the schema ------------------------------------------------

README = (Path(__file__).parents[1] / "README.md").read_text()


def readme_table() -> str:
    start = README.index("| key | type | default | meaning |")
    end = README.index("\n\n", start)
    return README[start:end] + "\n"


def test_readme_configuration_table_is_generated_from_the_schema():
    from lcbot.schema import markdown_table

    expected = markdown_table()
    assert readme_table() == expected, (
        "README's configuration table differs from lcbot.schema; replace it with the output "
        "of `python -m lcbot.schema`:\n" + expected
    )


def test_every_section_of_the_schema_is_in_the_readme_sample():
    from lcbot.schema import SCHEMA

    sample = README[README.index("```toml\n[bot]") :]
    for name in SCHEMA:
        assert f"[{name}]" in sample or name == "ingress", f"[{name}] missing from the sample"
