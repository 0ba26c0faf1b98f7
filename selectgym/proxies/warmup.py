"""LESS-style warm-up: a few AdamW steps of the LoRA on a small random share of the pool.

It gives the proxy Adam moments, which Adam-normalised gradients (``gradient_type=adam``) need, and
moves the adapter off its initialisation (peft starts LoRA's B at zero, where A gets no gradient).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from selectgym.data.pool import Example
from selectgym.data.render import collate, render_example
from selectgym.errors import SelectgymError
from selectgym.proxies.gradients import sequence_losses
from selectgym.proxies.lora import lora_parameters
from selectgym.proxies.losses import sft_losses  # noqa: F401  (benchmarks/testbed.py imports it from here)

log = logging.getLogger(__name__)


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


def warmup_checkpoints(model, tokenizer, pool: Sequence[Example], *, epochs: int, fraction: float = 0.05,
                       lr: float = 2e-5, batch_size: int = 8, max_length: int = 256, seed: int = 0,
                       warmup_ratio: float = 0.03) -> Iterator[tuple[int, torch.optim.AdamW, float]]:
    """LESS's warm-up: ``epochs`` passes over a seeded subset, linear LR warm-up then decay to 0 over all steps,
    yielding ``(epoch, optimizer, mean learning rate of that epoch)`` at the end of each epoch (a checkpoint).

    The epoch's mean LR is the weight LESS gives that checkpoint's gradients; the model is in eval mode at
    every yield and is trained on after it.
    """
    from transformers import get_linear_schedule_with_warmup

    params = [p for _, p in lora_parameters(model)]
    if not params:
        raise SelectgymError("the proxy has no LoRA parameters to warm up; attach an adapter first")
    if epochs < 1:
        raise SelectgymError(f"warm-up epochs must be >= 1, got {epochs}")
    rows = warmup_subset(len(pool), fraction, seed)
    per_epoch = -(-len(rows) // batch_size)
    total = epochs * per_epoch
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(warmup_ratio * total), total)
    rng = np.random.default_rng(seed)
    step = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(rows).tolist()
        lrs = []
        model.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + epoch)  # LoRA dropout, if any, inside this block only
            for start in range(0, len(order), batch_size):
                items = [render_example(tokenizer, pool[i], max_length) for i in order[start:start + batch_size]]
                loss = sequence_losses(model, collate(items, tokenizer.pad_token_id)).mean()
                if not torch.isfinite(loss):
                    raise SelectgymError(f"warm-up loss became {loss.item()} at step {step}; lower the warm-up lr "
                                         f"({lr})")
                lrs.append(optimizer.param_groups[0]["lr"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                step += 1
        optimizer.zero_grad(set_to_none=True)
        model.eval()
        log.debug("warm-up epoch %d: %d steps, mean lr %.3g", epoch, len(lrs), float(np.mean(lrs)))
        yield epoch, optimizer, float(np.mean(lrs))
