"""Halving a target set: one half for the selectors to aim at, the other to score them on.

It lives with the data because both the bench (``split_target``) and the agents' training pools (features
aligned to one half, the reward read on the other) cut the same target files the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selectgym.errors import SelectgymError
from selectgym.utils import write_jsonl

#: how the target set is halved; a cached training pool built with another split is rebuilt
SPLIT = "alternate-within-task"


def split_target(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The target rows in two halves, alternating within each task (``meta.task``), so both halves hold every
    target family in the same proportion (the suite writes its validation file sorted by family: a cut in the
    middle would give one family to the features and the other to the reward)."""
    seen: dict[Any, int] = {}
    halves: tuple[list, list] = ([], [])
    for row in rows:
        task = (row.get("meta") or {}).get("task", row.get("task"))
        halves[seen.get(task, 0) % 2].append(row)
        seen[task] = seen.get(task, 0) + 1
    return halves


def write_target_halves(src: Path, first: Path, second: Path) -> None:
    """Split the target file ``src`` with :func:`split_target` and write its halves to ``first`` and ``second``."""
    rows = [json.loads(line) for line in Path(src).read_text().splitlines() if line.strip()]
    halves = split_target(rows)
    if not all(halves):
        raise SelectgymError(f"splitting the target set needs at least two target problems; {src} has {len(rows)}")
    for path, half in zip((first, second), halves, strict=True):
        write_jsonl(path, half)
