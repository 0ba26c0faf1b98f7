"""Pools as the ``datasets.Dataset`` formats TRL's trainers read.

Every row keeps the example's ``id``: re-selection maps rows back to pool examples with it, and the GRPO
reward function looks each problem's verifier up by it (TRL passes extra dataset columns to rewards).
"""

from __future__ import annotations

import os
from pathlib import Path

from selectgym.data import Pool, load_pool
from selectgym.errors import SelectgymError


def as_pool(data: Pool | str | os.PathLike) -> Pool:
    """A pool given as such or as a file path (JSONL, JSON or parquet)."""
    if isinstance(data, Pool):
        pool = data
    elif isinstance(data, (str, Path)):
        pool = load_pool(data)
    else:
        raise SelectgymError(f"training data must be a Pool or a pool file, got {type(data).__name__}")
    if not len(pool):
        raise SelectgymError(f"{pool.source}: the pool is empty; there is nothing to train on")
    return pool


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def sft_dataset(pool: Pool):
    """Conversational prompt/completion rows: TRL puts the SFT loss on the completion only."""
    from datasets import Dataset

    return Dataset.from_list([{"id": ex.id, "prompt": ex.prompt, "completion": _assistant(ex.target)}
                              for ex in pool])


def dpo_dataset(pool: Pool):
    """Conversational prompt/chosen/rejected rows from a preference pool."""
    from datasets import Dataset

    bad = [ex.id for ex in pool if ex.chosen is None or ex.rejected is None]
    if bad:
        raise SelectgymError(f"{pool.source}: DPO needs preference pairs (prompt, chosen, rejected), but {len(bad)} "
                             f"examples have none (first: {bad[0]}); pass a preference pool or use --method sft")
    return Dataset.from_list([{"id": ex.id, "prompt": ex.prompt, "chosen": _assistant(ex.chosen),
                               "rejected": _assistant(ex.rejected)} for ex in pool])


def grpo_dataset(pool: Pool):
    """Prompt-only rows with the example id, so the reward function can score each problem."""
    from datasets import Dataset

    return Dataset.from_list([{"id": ex.id, "prompt": ex.prompt} for ex in pool])


DATASETS = {"sft": sft_dataset, "dpo": dpo_dataset, "grpo": grpo_dataset}
