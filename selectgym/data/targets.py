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


def split_target(rows: list[dict[str, Any]], parts: int = 2) -> tuple[list[dict[str, Any]], ...]:
    """The target rows in ``parts`` parts (two halves by default), alternating within each task (``meta.task``),
    so every part holds every target family in the same proportion (the suite writes its validation file sorted
    by family: a cut in the middle would give one family to the features and the other to the reward)."""
    if parts < 2:
        raise SelectgymError(f"a target set is split into 2 or more parts, got {parts}")
    seen: dict[Any, int] = {}
    out: tuple[list, ...] = tuple([] for _ in range(parts))
    for row in rows:
        task = (row.get("meta") or {}).get("task", row.get("task"))
        out[seen.get(task, 0) % parts].append(row)
        seen[task] = seen.get(task, 0) + 1
    return out


def write_target_halves(src: Path, first: Path, second: Path) -> None:
    """Split the target file ``src`` with :func:`split_target` and write its halves to ``first`` and ``second``."""
    write_target_parts(src, first, second)


def write_target_parts(src: Path, *paths: Path) -> None:
    """Split the target file ``src`` into ``len(paths)`` parts with :func:`split_target` and write them to ``paths``."""
    rows = [json.loads(line) for line in Path(src).read_text().splitlines() if line.strip()]
    parts = split_target(rows, len(paths))
    if not all(parts):
        raise SelectgymError(f"splitting the target set in {len(paths)} needs at least {len(paths)} target problems; "
                             f"{src} has {len(rows)}")
    for path, part in zip(paths, parts, strict=True):
        write_jsonl(path, part)
