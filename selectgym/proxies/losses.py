"""The SFT loss of each example under a model: a proxy feature (``loss``) and the evaluation's validation loss.

Both read the same number (token-mean response NLL, prompt masked), so it has one home named for what it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from selectgym.data.pool import Example
from selectgym.data.render import collate, render_example
from selectgym.proxies.gradients import length_batches, sequence_losses


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


def validation_loss(model, tokenizer, examples: Sequence[Example], *, batch_size: int = 16,
                    max_length: int = 512) -> float:
    """Mean over examples of the token-mean NLL of the reference answer (prompt tokens masked)."""
    return float(sft_losses(model, tokenizer, list(examples), batch_size=batch_size, max_length=max_length)
                 .astype(np.float64).mean())
