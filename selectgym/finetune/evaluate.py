"""Evaluate a model on a target set: verifier accuracy of greedy answers and the validation loss.

Accuracy: one greedy completion per prompt (transformers, left-padded batches), scored by the example's
verifier (reasoning-gym's checker, exact match otherwise). Validation loss: each example's token-mean NLL
of its reference answer with the prompt masked (the SFT loss of ALGORITHMS.md section 1), averaged over
examples. Preference accuracy (for DPO): the share of held-out pairs whose chosen reply the trained policy's
implicit reward ranks above the rejected one.
"""

from __future__ import annotations

import numpy as np

from selectgym.data.pool import Pool
from selectgym.data.verify import score
from selectgym.errors import SelectgymError
from selectgym.proxies.dpo import dpo_reward_gaps
from selectgym.proxies.losses import validation_loss
from selectgym.proxies.rollouts import greedy_completions


def check_evaluable(pool: Pool) -> None:
    """An evaluation set must have something to check answers against (else a blank answer scores 1.0)."""
    if not len(pool):
        raise SelectgymError(f"{pool.source}: the evaluation set is empty")
    unchecked = [ex for ex in pool if not (ex.answer or "").strip() and not (ex.meta.get("entry") and
                                                                              ex.meta.get("task"))]
    if unchecked:
        raise SelectgymError(f"{pool.source}: {len(unchecked)} of {len(pool)} evaluation examples have no reference "
                             f"answer to check (e.g. {unchecked[0].id!r}; a {pool.format} pool holds responses, not "
                             f"answers): evaluate on a verifiable file (prompt + answer), e.g. the suite's "
                             f"validation.jsonl")


def evaluate(model, tokenizer, pool: Pool, *, max_new_tokens: int = 16, batch_size: int = 16) -> dict[str, float]:
    """``{"accuracy", "val_loss", "n"}`` of ``model`` on the target ``pool``."""
    if batch_size < 1 or max_new_tokens < 1:
        raise SelectgymError(f"batch_size and max_new_tokens must be >= 1, got {batch_size} and {max_new_tokens}")
    check_evaluable(pool)
    completions = greedy_completions(model, tokenizer, pool, max_new_tokens=max_new_tokens, batch_size=batch_size)
    accuracy = float(np.mean([score(ex, c) for ex, c in zip(pool, completions, strict=True)]))
    return {"accuracy": accuracy, "val_loss": validation_loss(model, tokenizer, pool, batch_size=batch_size),
            "n": len(pool)}


def preference_accuracy(model, tokenizer, pairs: Pool, *, batch_size: int = 16, max_length: int = 512) -> float:
    """Share of ``pairs`` where the peft ``model``'s implicit DPO reward ranks chosen over rejected:
    ``logp(chosen) - logp_ref(chosen) > logp(rejected) - logp_ref(rejected)``, the reference being ``model`` with
    its adapter disabled. A tie (an untrained adapter) counts as not ranked above: only what training learnt
    scores."""
    if not len(pairs):
        raise SelectgymError(f"{pairs.source}: there are no preference pairs to score")
    if not hasattr(model, "disable_adapter"):
        raise SelectgymError("preference accuracy needs the trained peft model: its reference is the same model "
                             "with the LoRA adapter disabled")
    gaps = dpo_reward_gaps(model, None, tokenizer, list(pairs), beta=1.0, batch_size=batch_size,
                           max_length=max_length)
    return float(np.mean(gaps > 0))
