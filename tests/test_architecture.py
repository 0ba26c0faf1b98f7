"""ARCHITECTURE.md's "where a new piece goes" table and the package's registries stay in step: every registry it
names exists where it says and is a ``Registry``, and every ``Registry`` in the package has its row."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from selectgym.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "selectgym"


def table_rows() -> list[list[str]]:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Where a new piece goes", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| you add")]
    assert rows and all(len(r) == 4 for r in rows), rows
    return rows


def named_registries(cell: str) -> list[tuple[str, str]]:
    """``(NAME, module path)`` pairs written as "`NAME` in `path/file.py`" in a table cell."""
    return re.findall(r"`([A-Z_]+)` in `([\w/.]+\.py)`", cell)


def module_of(path: str) -> str:
    rel = Path("selectgym") / path
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def registries_in_code() -> set[tuple[str, str]]:
    """Every ``NAME = Registry(...)`` at module level in the package, as ``(NAME, path under selectgym/)``."""
    found = set()
    for file in PACKAGE.rglob("*.py"):
        for node in ast.parse(file.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                    and getattr(node.value.func, "id", None) == "Registry":
                for target in node.targets:
                    found.add((target.id, str(file.relative_to(PACKAGE))))
    return found


def test_every_registry_the_table_names_is_where_it_says():
    named = [pair for row in table_rows() for pair in named_registries(row[2])]
    assert named, "the table names no registry"
    for name, path in named:
        value = getattr(importlib.import_module(module_of(path)), name)
        if name == "COMMANDS":  # the subcommands are modules, not classes: a plain mapping
            assert isinstance(value, dict) and value
        else:
            assert isinstance(value, Registry), f"{name} in {path} is not a Registry"


def test_every_registry_in_the_package_has_its_row():
    named = {pair for row in table_rows() for pair in named_registries(row[2])}
    missing = registries_in_code() - named
    assert not missing, f"registries without a row in ARCHITECTURE.md: {sorted(missing)}"


def test_file_counts_are_written_for_every_row():
    for row in table_rows():
        assert re.match(r"^\d", row[3]), f"row {row[0]!r} does not say how many files an addition touches"
