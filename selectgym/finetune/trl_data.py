"""Pools as the ``datasets.Dataset`` formats TRL's trainers read.

Every row keeps the example's ``id``: re-selection maps rows back to pool examples with it, and the GRPO
reward function looks each problem's verifier up by it (TRL passes extra dataset columns to rewards).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from selectgym.data import Pool, load_pool
from selectgym.errors import SelectgymError

log = logging.getLogger(__name__)


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


def check_max_length(pool: Pool, tokenizer, max_length: int) -> None:
    """Refuse a ``max_length`` no example fits in, before any model loads; warn about the examples it drops.

    TRL keeps the start of each example and drops one whose prompt (as the chat template renders it, with the
    generation prompt) fills ``max_length``: none of its response is left to train on. When that is every
    example, training would fail on an empty dataset; this says so, with the length that works."""
    lengths = [len(tokenizer.apply_chat_template(ex.prompt, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]) for ex in pool]
    dropped = sum(n >= max_length for n in lengths)
    if dropped == len(lengths):
        raise SelectgymError(f"--max-length {max_length} leaves no example of {pool.source} a response token to train "
                             f"on: the shortest prompt takes {min(lengths)} tokens with the chat template; use "
                             f"--max-length {min(lengths) + 1} or more (the longest prompt takes {max(lengths)})")
    if dropped:
        log.warning("%d of %d examples of %s have a prompt of --max-length %d tokens or more and are left out of "
                    "training (the longest prompt takes %d tokens); raise --max-length to keep them", dropped,
                    len(lengths), pool.source, max_length, max(lengths))


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
