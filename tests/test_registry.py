"""The one registry helper: names and dotted paths, one error for an unknown name, option checks; and every
registry of the package is built with it, so they cannot drift apart again."""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from selectgym.errors import SelectgymError
from selectgym.registry import Registry, import_path, is_path, option_names

PACKAGE = Path(__file__).resolve().parents[1] / "selectgym"


class Shape:
    """A base class the test registry requires."""


@dataclass
class Square(Shape):
    side: float = 1.0
    colour: str = "red"


class Circle(Shape):
    def __init__(self, radius: float, *, filled: bool = False, _cache: dict | None = None) -> None:
        self.radius, self.filled = radius, filled


class Anything(Shape):
    def __init__(self, **options) -> None:
        self.options = options


class NotAShape:
    pass


@pytest.fixture()
def shapes() -> Registry:
    return Registry("shape", {"square": Square, "circle": "tests.test_registry:Circle"}, base=Shape)


def test_names_resolve_to_classes_and_lazy_paths_import_on_use(shapes):
    assert list(shapes) == ["square", "circle"] and len(shapes) == 2 and "circle" in shapes
    assert shapes["circle"] == "tests.test_registry:Circle"  # as registered: nothing imported to list names
    assert shapes.resolve("square") is Square and shapes.resolve("circle") is Circle
    assert isinstance(shapes.create("square", side=2.0), Square)


def test_dotted_paths_name_classes_outside_the_registry(shapes):
    assert shapes.resolve("tests.test_registry:Anything") is Anything
    assert shapes.resolve("tests.test_registry.Anything") is Anything
    assert is_path("pkg.mod:Class") and is_path("pkg.mod.Class") and not is_path("square")
    assert import_path("selectgym.errors:SelectgymError") is SelectgymError
    with pytest.raises(SelectgymError, match="cannot import 'no_such_pkg.mod' for shape"):
        shapes.resolve("no_such_pkg.mod:Thing")
    with pytest.raises(SelectgymError, match="module 'tests.test_registry' has no 'Hexagon'"):
        shapes.resolve("tests.test_registry:Hexagon")
    with pytest.raises(SelectgymError, match="'tests.test_registry:NotAShape' is not a Shape subclass"):
        shapes.resolve("tests.test_registry:NotAShape")


def test_an_unknown_name_is_one_line_that_lists_the_choices(shapes):
    with pytest.raises(SelectgymError) as err:
        shapes.resolve("triangle")
    assert str(err.value) == ("unknown shape 'triangle'; choose from square, circle, or pass a dotted path "
                              "pkg.mod:Class")
    closed = Registry("env", {"a-v0": Square}, paths=False)
    with pytest.raises(SelectgymError) as err:
        closed.resolve("b.c:D")
    assert str(err.value) == "unknown env 'b.c:D'; choose from a-v0"
    with pytest.raises(SelectgymError, match="choose from auto, square, circle"):
        shapes.resolve("triangle", also=("auto",))


def test_options_come_from_dataclass_fields_or_the_signature(shapes):
    assert option_names(Square) == ["side", "colour"]
    assert option_names(Circle) == ["radius", "filled"]  # private parameters are not options
    assert shapes.options("circle") == ["radius", "filled"]
    assert Registry("shape", {"circle": Circle}, fixed=("radius",)).options("circle") == ["filled"]


def test_an_unknown_option_is_one_line_that_lists_the_valid_ones(shapes):
    with pytest.raises(SelectgymError) as err:
        shapes.create("square", sides=4, color="blue")
    assert str(err.value) == "shape 'square' has no option(s) color, sides; it takes: side, colour"
    with pytest.raises(SelectgymError, match="bad options for the shape 'circle': missing a required argument"):
        shapes.create("circle", filled=True)
    assert shapes.create("circle", 2.0, filled=True).radius == 2.0
    assert shapes.create("tests.test_registry:Anything", whatever=1).options == {"whatever": 1}  # **options: any


def test_register_adds_names_and_refuses_clashes(shapes):
    shapes.register("blob", "tests.test_registry:Anything")
    assert shapes.resolve("blob") is Anything

    @shapes.register("disc")
    class Disc(Circle):
        pass

    assert shapes.resolve("disc") is Disc
    with pytest.raises(SelectgymError, match="shape 'square' is already registered"):
        shapes.register("square", Circle)
    with pytest.raises(SelectgymError, match="must be a plain word"):
        shapes.register("a.b", Circle)


#: every registry of the package: (module, name) -> what a registry must hold
REGISTRIES = [
    ("selectgym.selectors", "SELECTORS"),
    ("selectgym.proxies.features", "FEATURES"),
    ("selectgym.envs.rewards", "REWARDS"),
    ("selectgym.proxies.rewards", "COMPLETION_REWARDS"),
    ("selectgym.proxies.projection", "PROJECTORS"),
    ("selectgym.proxies.rollouts", "GENERATORS"),
    ("selectgym.agents.config", "ALGORITHMS"),
    ("selectgym.envs", "ENVS"),
]


@pytest.mark.parametrize(("module", "name"), REGISTRIES)
def test_every_registry_is_a_registry(module, name):
    registry = getattr(importlib.import_module(module), name)
    assert isinstance(registry, Registry), f"{module}.{name} is a {type(registry).__name__}; build it with Registry"
    for entry in registry:
        assert isinstance(registry.resolve(entry), type)  # every entry, lazy ones included, imports


def _old_style(node: ast.AST) -> bool:
    """A module-level table of classes written by hand: a dict whose values are all classes, ``"mod:Class"`` strings or
    ``(module, class)`` tuples."""
    if not isinstance(node, ast.Dict) or len(node.values) < 2:
        return False

    def looks_like_class(v: ast.AST) -> bool:
        if isinstance(v, ast.Name):
            return v.id[:1].isupper() and not v.id.isupper()
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            return ":" in v.value and " " not in v.value and v.value.partition(":")[2][:1].isupper()
        return isinstance(v, ast.Tuple) and len(v.elts) == 2 and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in v.elts) and \
            str(v.elts[1].value)[:1].isupper()

    return all(looks_like_class(v) for v in node.values)


def test_no_registry_is_written_by_hand():
    """A new name -> class table goes through Registry (so the error style and option check come with it)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if value is not None and _old_style(value):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, f"build these with selectgym.registry.Registry: {found}"
    assert _old_style(ast.parse('{"a": Foo, "b": "m:Bar"}', mode="eval").body)  # the check can fail
    assert _old_style(ast.parse('{"a": ("m", "Foo"), "b": ("m", "Bar")}', mode="eval").body)
