"""The package's imports point down the layers and never go round in a circle.

Data flows one way: data -> proxies (features) -> selectors / envs -> agents -> finetune -> bench -> commands.
Every ``import selectgym...`` counts, at module level or inside a function (a lazy import hides a dependency
but does not remove it); registries that name a class by a dotted string are not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "selectgym"

#: top-level part of the package -> its floor; a module may import its own floor or lower ones
LAYERS = {
    "__init__": 0, "errors": 0, "utils": 0, "budget": 0, "outputs": 0, "registry": 0,
    "data": 1,
    "proxies": 2,
    "selectors": 3,
    "envs": 4,
    "agents": 5,
    "finetune": 6,
    "bench": 7,
    "commands": 8, "cli": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The ``selectgym`` modules a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("selectgym")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("selectgym") \
                and node.level == 0:
            for alias in node.names:  # `from selectgym.x import y` may name a module y
                sub = f"{node.module}.{alias.name}"
                found.add(sub if module_path(sub) is not None else node.module)
    return found


def module_path(name: str) -> Path | None:
    base = PACKAGE.parent / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def layer(name: str) -> int:
    parts = name.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {module_name(p): {m for m in imports_of(p) if m != module_name(p)} for p in PACKAGE.rglob("*.py")}


def test_every_part_of_the_package_has_a_floor(graph):
    unplaced = sorted({m.split(".")[1] for m in graph if "." in m} - set(LAYERS))
    assert not unplaced, f"give {unplaced} a floor in LAYERS"


def test_imports_point_down(graph):
    upward = sorted(f"{a} (floor {layer(a)}) imports {b} (floor {layer(b)})"
                    for a, deps in graph.items() for b in deps if layer(b) > layer(a))
    assert not upward, "\n".join(upward)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components: every component of two or more modules is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles(graph):
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check can fail
    assert not circles(graph), circles(graph)


def test_the_walk_sees_imports(graph):
    """The test itself can fail: the walk finds known edges, lazy ones included."""
    assert "selectgym.proxies.store" in graph["selectgym.commands.select"]
    assert any(m.startswith("selectgym.proxies") for m in graph["selectgym.agents.apply"])
