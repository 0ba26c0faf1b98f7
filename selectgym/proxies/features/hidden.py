"""The proxy's own representation of an example: its mean-pooled last hidden state (RDS+'s embedding).

RDS+ (Ivison et al., 2025) ranks candidates by the cosine between such embeddings of each example and of the
target set, and beat LESS when selecting from millions of examples; here the proxy model gives them, so they
cost one forward pass (no backward). Computed on demand: a pool's standard features leave it out, and the
bench computes it when a method reads it (``rds``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from selectgym.data.pool import Example
from selectgym.data.render import collate, render_example
from selectgym.proxies.features.base import Feature
from selectgym.proxies.gradients import length_batches


def mean_hidden(model, tokenizer, examples: Sequence[Example], batch_size: int, max_length: int) -> np.ndarray:
    """``(N, hidden)`` mean over each example's tokens (prompt and response, padding left out) of the last
    hidden layer, in float32."""
    rendered = [render_example(tokenizer, ex, max_length) for ex in examples]
    out: np.ndarray | None = None
    with torch.no_grad():
        for rows in length_batches([len(r.input_ids) for r in rendered], batch_size):
            batch = collate([rendered[i] for i in rows], tokenizer.pad_token_id)
            device = next(model.parameters()).device
            mask = batch["attention_mask"].to(device)
            hidden = model(input_ids=batch["input_ids"].to(device), attention_mask=mask,
                           output_hidden_states=True).hidden_states[-1].float()
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            if out is None:
                out = np.zeros((len(examples), pooled.shape[1]), dtype=np.float32)
            out[rows] = pooled.cpu().numpy()
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


@dataclass
class Hidden(Feature):
    name = "hidden"
    help = "the proxy's mean-pooled last hidden state of prompt + response (RDS+; the target examples' too)"
    on_demand = True
    train_arrays = ("hidden",)
    val_arrays = ("hidden",)

    def train(self, proxy, examples, cache):
        cfg = proxy.cfg
        return {"hidden": mean_hidden(proxy.model, proxy.tokenizer, examples, cfg.batch_size, cfg.max_length)}

    def val(self, proxy, examples, cache):
        return self.train(proxy, examples, cache)
