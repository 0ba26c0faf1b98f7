"""The envelope every results file puts around its figures: the command that makes it again, the machine, how busy
the CPU was, the paired tests, and the writing of ``<stem>.json`` and ``<stem>.md``.

A recorded command is free of the checkout's path: ``.venv/bin/python -m benchmarks.<group>.<script> [args]``, run
from the root of a checkout wherever it lies (with ``nice -n N`` in front when the run was niced). The paired
t-test is ``selectgym.bench.report.paired_test``, the one in the tree.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selectgym.bench.report import paired_test
from selectgym.utils import atomic_path, write_json

__all__ = ["PYTHON", "RESULTS", "ROOT", "command_line", "environment", "load_average", "load_note", "module_name",
           "paired_p", "paired_test", "read_json", "replace_section", "section_of", "write_markdown",
           "write_results"]

#: the root of the checkout (the folder that holds ``benchmarks/``): recorded commands run from it
ROOT = Path(__file__).resolve().parents[1]
#: where the committed results live
RESULTS = ROOT / "benchmarks" / "results"
#: the interpreter a recorded command names, relative to the checkout root
PYTHON = ".venv/bin/python"


# -- the command and the machine -----------------------------------------------------------------------------
def module_name(script: str | os.PathLike) -> str:
    """The module a script runs as: ``benchmarks/quality/transfer.py`` -> ``benchmarks.quality.transfer``."""
    return ".".join(Path(script).resolve().relative_to(ROOT).with_suffix("").parts)


def command_line(script: str | os.PathLike, argv: Sequence[str] | None = None) -> str:
    """The command that runs ``script`` again with ``argv`` (default: this process's arguments), from the root of
    any checkout: ``.venv/bin/python -m benchmarks.quality.transfer --seeds 0 1``."""
    args = list(sys.argv[1:] if argv is None else argv)
    niceness = os.nice(0)
    return shlex.join([*(["nice", "-n", str(niceness)] if niceness > 0 else []), PYTHON, "-m", module_name(script),
                       *args])


def environment(threads: int | None = None) -> str:
    """The machine in one line: ``Python 3.11.7, torch 2.13.0+cpu (2 threads), x86_64`` (``threads``: torch's CPU
    threads, default the number it uses now)."""
    import torch

    n = torch.get_num_threads() if threads is None else threads
    return (f"Python {platform.python_version()}, torch {torch.__version__} ({n} thread{'' if n == 1 else 's'}), "
            f"{platform.processor() or platform.machine()}")


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded to two places."""
    return [round(x, 2) for x in os.getloadavg()]


def load_note(before: list[float], after: list[float]) -> str:
    """How busy the CPU was around a benchmark, in one sentence, so a results file says how far to trust absolute
    figures. The load after includes the benchmark's own threads, so the verdict reads the 1-minute load before
    the run; it lags, so a job that just ended still counts."""
    cores = os.cpu_count() or 1
    verdict = ("the CPU was already busy when the run began (another job, or one that had just ended), so "
               "absolute figures may be low; ratios compare methods within the same run"
               if before[0] > 0.5 * cores else "the CPU was otherwise idle when the run began")
    return (f"Load average (1/5/15 min) before/after: {before} / {after} on {cores} cores, the after figure "
            f"including the benchmark's own threads: {verdict}.")


# -- paired tests ----------------------------------------------------------------------------------------------
def paired_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The p-value of ``paired_test(a, b)`` (two-sided paired t-test; nan when every difference is the same), or
    None with fewer than two pairs."""
    return paired_test(a, b)[1] if len(a) > 1 else None


# -- the files -------------------------------------------------------------------------------------------------
def read_json(stem: str | os.PathLike) -> dict[str, Any]:
    """What ``<stem>.json`` holds, or ``{}`` when there is none."""
    path = Path(stem).with_suffix(".json")
    return json.loads(path.read_text()) if path.exists() else {}


def write_markdown(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_results(stem: str | os.PathLike, report: dict[str, Any], markdown: str | None = None, *,
                  merge: bool = False) -> dict[str, Any]:
    """Write ``report`` to ``<stem>.json`` (with ``merge``, over the keys already there, which other benchmarks
    wrote) and ``markdown`` to ``<stem>.md``, each atomically; returns what the JSON file now holds."""
    stem = Path(stem)
    data = {**read_json(stem), **report} if merge else report
    write_json(stem.with_suffix(".json"), data)
    if markdown is not None:
        write_markdown(stem.with_suffix(".md"), markdown)
    return data


def section_of(path: str | os.PathLike, heading: str) -> str:
    """The Markdown at ``path`` from the line ``heading`` (e.g. ``## Downstream``, which another benchmark writes) to
    its end, with the newline before it; ``""`` when the file or the heading is missing."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    at = text.find(f"\n{heading}")
    return text[at:] if at >= 0 else ""


def replace_section(path: str | os.PathLike, heading: str, section: str) -> str:
    """The Markdown at ``path`` (empty when missing) with everything from the line ``heading`` on replaced by
    ``section``, which starts with that heading; a blank line between the two."""
    path = Path(path)
    kept = path.read_text().split(f"\n{heading}")[0].rstrip("\n") if path.exists() else ""
    return f"{kept}\n\n{section}"
