"""The shape of the code stays as docs/architecture.md says: small modules, no import cycle
(``TYPE_CHECKING`` and function-level imports count), nothing below the App imports it, and
SQL only in the database layer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

LCBOT = Path(__file__).resolve().parents[1] / "lcbot"
MAX_LINES = 400
ABOVE_APP = {"lcbot.app", "lcbot.cli.run_cmd", "lcbot.testing"}  # may import lcbot.app
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b"
)


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(LCBOT.rglob("*.py")):
        parts = path.relative_to(LCBOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every lcbot module ``name`` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "lcbot":
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_no_module_is_too_long():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_cycle_check_can_fail(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import lcbot.b\n")
    b.write_text("def f():\n    from lcbot import a\n")
    known = {"lcbot.a", "lcbot.b"}
    assert imports("lcbot.a", a, known) == {"lcbot.b"}
    assert imports("lcbot.b", b, known) == {"lcbot.a"}


def test_nothing_below_the_app_imports_it():
    importers = {name for name, targets in graph().items() if "lcbot.app" in targets}
    assert importers <= ABOVE_APP, f"import lcbot.app from below it: {importers - ABOVE_APP}"


def test_sql_lives_in_the_database_layer():
    offenders = []
    for name, path in modules().items():
        if name == "lcbot.db" or name.startswith("lcbot.db."):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SQL.search(line) or re.search(r"\b(db|conn|connection|cursor)\.execute", line):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, "SQL outside lcbot/db:\n" + "\n".join(offenders)
