"""LESS-style warm-up: a few AdamW steps of the LoRA on a small random share of the pool.

It gives the proxy Adam moments, which Adam-normalised gradients (``gradient_type=adam``) need, and
moves the adapter off its initialisation (peft starts LoRA's B at zero, where A gets no gradient).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from selectgym.data.pool import Example
from selectgym.data.render import collate, render_example
from selectgym.errors import SelectgymError
from selectgym.proxies.gradients import length_batches, sequence_losses
from selectgym.proxies.lora import lora_parameters

log = logging.getLogger(__name__)


@torch.no_grad()
def sft_losses(model, tokenizer, examples: Sequence[Example], *, batch_size: int = 8,
               max_length: int = 256) -> np.ndarray:
    """The SFT loss (token-mean response NLL) of each example under ``model``, ``(N,)`` float32, no gradients."""
    was_training = model.training
    model.eval()
    rendered = [render_example(tokenizer, ex, max_length) for ex in examples]
    out = np.zeros(len(examples), dtype=np.float32)
    for rows in length_batches([len(r.input_ids) for r in rendered], batch_size):
        batch = collate([rendered[i] for i in rows], tokenizer.pad_token_id)
        out[rows] = sequence_losses(model, batch).float().cpu().numpy()
    model.train(was_training)
    return out


def warmup_subset(n: int, fraction: float, seed: int) -> np.ndarray:
    """Row positions of the warm-up subset: ``max(1, round(fraction * n))`` rows drawn without replacement."""
    if not 0.0 < fraction <= 1.0:
        raise SelectgymError(f"warm-up fraction must lie in (0, 1], got {fraction}")
    size = min(n, max(1, round(fraction * n)))
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def warmup(model, tokenizer, pool: Sequence[Example], *, steps: int, fraction: float = 0.05, lr: float = 2e-4,
           batch_size: int = 8, max_length: int = 256, seed: int = 0) -> torch.optim.AdamW:
    """Train the LoRA for ``steps`` AdamW steps on a seeded subset of ``pool``; return the optimizer.

    Batches cycle through the subset in a seeded order; the same seed gives the same adapter and moments.
    The model is left in eval mode.
    """
    params = [p for _, p in lora_parameters(model)]
    if not params:
        raise SelectgymError("the proxy has no LoRA parameters to warm up; attach an adapter first")
    if steps < 0:
        raise SelectgymError(f"warm-up steps must be >= 0, got {steps}")
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    if steps == 0 or not pool:
        model.eval()
        return optimizer
    rng = np.random.default_rng(seed)
    rows = warmup_subset(len(pool), fraction, seed)
    order: list[int] = []
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # LoRA dropout, if any, inside this block only
        for step in range(steps):
            while len(order) < batch_size:
                order.extend(rng.permutation(rows).tolist())
            take, order = order[:batch_size], order[batch_size:]
            items = [render_example(tokenizer, pool[i], max_length) for i in take]
            loss = sequence_losses(model, collate(items, tokenizer.pad_token_id)).mean()
            if not torch.isfinite(loss):
                raise SelectgymError(f"warm-up loss became {loss.item()} at step {step}; lower the warm-up lr ({lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            log.debug("warm-up step %d loss %.4f", step, loss.item())
    optimizer.zero_grad(set_to_none=True)
    model.eval()
    return optimizer
