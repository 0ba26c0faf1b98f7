"""benchmarks/ is one package: no script imports a sibling by a bare name or writes an absolute path, each says how
to run it as a module, the tree holds one t-test and one fine-tune-then-score, and every committed result records a
command that runs from the root of any checkout."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "benchmarks"
RESULTS = PACKAGE / "results"
SOURCES = sorted(PACKAGE.rglob("*.py"))
#: names a bare import of a benchmarks module would use: its modules and its folders
LOCAL = {p.stem for p in SOURCES} | {p.name for p in PACKAGE.rglob("*") if p.is_dir()}
#: an absolute path (``/work/...``, ``/tmp/x/``, ``/home/...``) inside a string; the kernel's own files are allowed
ABSOLUTE = re.compile(r"(?<![\w.~:/\\-])/(?!proc/|sys/|dev/)[\w.-]+/")
#: a recorded command: the checkout's interpreter running a benchmarks module, nothing before it but a niceness
COMMAND = re.compile(r"^(nice -n \d+ )?\.venv/bin/python -m (benchmarks(?:\.\w+)+)( .*)?$")
SCRIPTS = [p for p in SOURCES if p.parent != PACKAGE and p.name != "__init__.py"]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def strings(module: ast.Module):
    """Every string literal, docstrings and f-string pieces included, with its line. A piece of an f-string after a
    replacement field is joined to it (``f"{root}/runs/"``), so it is not the start of a path."""
    joined = {id(v) for node in ast.walk(module) if isinstance(node, ast.JoinedStr) for v in node.values[1:]}
    for node in ast.walk(module):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, ("x" if id(node) in joined else "") + node.value


def test_the_layout_is_found():
    assert {"envelope", "harness", "headline", "transfer", "scale"} <= LOCAL
    assert len(SCRIPTS) >= 13


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_no_sibling_imports(path):
    bad = []
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.ImportFrom) and node.level:
            bad.append(f"line {node.lineno}: relative import (write `from benchmarks.... import ...`)")
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        bad += [f"line {node.lineno}: `{n}` is a module of benchmarks/ imported by a bare name" for n in names
                if n.split(".")[0] in LOCAL - {"benchmarks"}]
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
            bad.append(f"line {node.lineno}: sys.path is how a sibling gets imported by a bare name")
    assert not bad, f"{rel(path)}: " + "; ".join(bad)


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_no_absolute_paths(path):
    bad = [f"line {line}: {m.group(0)!r}" for line, text in strings(tree(path)) for m in ABSOLUTE.finditer(text)]
    assert not bad, f"{rel(path)} holds an absolute path (a checkout or a machine's): " + "; ".join(bad)


def test_the_path_check_catches_what_it_should():
    for text in ("cd /work/main && x", "/tmp/selector_quality", "PYTHONPATH=/work/wt-scale", "'/home/me/data/'"):
        assert ABSOLUTE.search(text), text
    for text in ("/proc/self/status", "benchmarks/results", "https://github.com/x/y", "1/5/15 min", "steps/s",
                 "(c)/(b)", "x/runs/"):
        assert not ABSOLUTE.search(text), text


@pytest.mark.parametrize("path", SCRIPTS, ids=rel)
def test_each_script_says_how_to_run_it_as_a_module(path):
    module = tree(path)
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    assert f".venv/bin/python -m {name}" in " ".join((ast.get_docstring(module) or "").split()), \
        f"{rel(path)}: its docstring should say `.venv/bin/python -m {name}`"
    assert any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in module.body)


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_mentions_of_benchmark_files_point_at_files_that_exist(path):
    text = path.read_text()
    for mention in re.findall(r"benchmarks/[\w/]+\.(?:py|yaml)", text):
        assert (ROOT / mention).exists(), f"{rel(path)} mentions {mention}, which is not there"
    for mention in re.findall(r"benchmarks(?:\.\w+)+", text):
        parts = mention.split(".")
        while len(parts) > 1 and not (ROOT.joinpath(*parts).with_suffix(".py").exists()
                                      or (ROOT.joinpath(*parts) / "__init__.py").exists()):
            parts.pop()  # benchmarks.harness.EVAL_POOLS: a name inside a module
        assert len(parts) > 1, f"{rel(path)} mentions {mention}, which is no module"


def test_one_t_test_and_one_fine_tune_then_score():
    """The paired t-test is ``selectgym.bench.report.paired_test``; fine-tuning the target on a selection and scoring
    it is ``selectgym.bench.harness.finetune_and_score``."""
    ttests = [rel(p) for p in sorted([*SOURCES, *(ROOT / "selectgym").rglob("*.py")])
              if re.search(r"\bttest_(rel|ind|1samp)\b", p.read_text())]
    assert ttests == ["selectgym/bench/report.py"]
    for path in SOURCES:
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.ImportFrom) and node.module == "selectgym.finetune.train":
                pytest.fail(f"{rel(path)} fine-tunes by itself: use selectgym.bench.harness.finetune_and_score")
            assert not (isinstance(node, ast.Call) and ast.unparse(node.func) == "os.getloadavg"
                        and path.name != "envelope.py"), f"{rel(path)}: the load note is benchmarks.envelope's"


def commands(obj):
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "command" and isinstance(value, str):
                yield value
            else:
                yield from commands(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from commands(value)


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_committed_results_record_a_command_that_runs_from_any_checkout(path):
    recorded = list(commands(json.loads(path.read_text())))
    assert recorded, f"{path.name} records no command"
    for command in recorded:
        match = COMMAND.match(command)
        assert match, f"{path.name}: {command!r} is not `.venv/bin/python -m benchmarks....` run from the checkout"
        assert (ROOT / match.group(2).replace(".", "/")).with_suffix(".py").exists(), command
    md = path.with_suffix(".md")
    if md.exists():
        shown = re.findall(r"^Command: `([^`]*)`", md.read_text(), flags=re.M)
        assert shown and set(shown) <= set(recorded), f"{md.name}'s Command: lines are not its JSON's commands"


@pytest.mark.parametrize("path", sorted(p for p in RESULTS.glob("*") if p.suffix in (".json", ".md")),
                         ids=lambda p: p.name)
def test_committed_results_hold_no_absolute_path(path):
    found = ABSOLUTE.findall(path.read_text())
    assert not found, f"{path.name} records a path of the machine it ran on: {found[:3]}; record one under the checkout"
