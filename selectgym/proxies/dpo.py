"""DPO implicit reward gaps (arXiv 2508.04149): how much more the policy prefers the chosen reply than the reference.

``r(x, y) = beta * [log pi(y|x) - log pi_ref(y|x)]`` over the response tokens only, and
``gap = r(x, chosen) - r(x, rejected)``. Padding is excluded from every sum (the upstream code adds padding
tokens in); a peft policy can be its own reference with the adapter switched off.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from selectgym.data.pool import Example
from selectgym.data.render import collate, render_example
from selectgym.errors import SelectgymError

REDUCTIONS = ("sum", "mean")


def sequence_logps(model, batch: dict[str, torch.Tensor], reduction: str = "sum") -> torch.Tensor:
    """Log-probability of each sequence's response tokens ``(B,)`` float32: summed, or the token mean.

    Token ``t`` is predicted from the logits at ``t - 1``; only positions where both ``response_mask`` and
    ``attention_mask`` are 1 count, so right padding changes nothing.
    """
    if reduction not in REDUCTIONS:
        raise SelectgymError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    device = next(model.parameters()).device
    ids = batch["input_ids"].to(device)
    attn = batch["attention_mask"].to(device)
    mask = (batch["response_mask"].to(device) * attn)[:, 1:].to(torch.float32)
    logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits[:, :-1]
    token_logps = -F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
    total = (token_logps.view_as(mask) * mask).sum(1)
    if reduction == "mean":
        total = total / mask.sum(1).clamp(min=1)
    return total


@contextmanager
def _inference(model) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd for the call; the model's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def _check_pairs(examples: Sequence[Example]) -> None:
    for ex in examples:
        if ex.chosen is None or ex.rejected is None:
            raise SelectgymError(f"example {ex.id} has no chosen/rejected pair; DPO gaps need a preference pool")


def dpo_reward_gaps(policy, reference, tokenizer, examples: Sequence[Example], *, beta: float = 0.1,
                    reduction: str = "sum", batch_size: int = 8, max_length: int = 256) -> np.ndarray:
    """Signed implicit-reward gaps ``(N,)``: small or negative means the pair is hard for the policy.

    ``reference=None`` uses the peft ``policy`` with its adapter disabled as the reference model.
    """
    if reduction not in REDUCTIONS:
        raise SelectgymError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if batch_size < 1:
        raise SelectgymError(f"batch_size must be >= 1, got {batch_size}")
    examples = list(examples)
    _check_pairs(examples)
    if reference is None and not hasattr(policy, "disable_adapter"):
        raise SelectgymError("reference=None needs a peft policy (its adapter is switched off for the reference); "
                             "pass a reference model instead")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    items = [render_example(tokenizer, ex, max_length, field=f) for ex in examples for f in ("chosen", "rejected")]
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    rewards = np.zeros(len(items), dtype=np.float64)
    with _inference(policy), (_inference(reference) if reference is not None else nullcontext()):
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = collate([items[i] for i in rows], pad_id)
            logp = sequence_logps(policy, batch, reduction)
            if reference is None:
                with policy.disable_adapter():
                    ref = sequence_logps(policy, batch, reduction)
            else:
                ref = sequence_logps(reference, batch, reduction)
            rewards[rows] = beta * (logp.double() - ref.double()).cpu().numpy()
    return rewards[0::2] - rewards[1::2]
