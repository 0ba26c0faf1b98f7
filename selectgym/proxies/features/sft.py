"""The SFT features of a pool: projected gradients (raw and Adam-normalised), loss, response length, embedding.

The gradients and the loss come from one backward pass per batch, shared through the shard's ``cache``; with
LESS's schedule the pass runs at every checkpoint (arrays ``name@ckpt`` beside the final one's plain names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selectgym.data.pool import Example
from selectgym.data.render import collate, render_example
from selectgym.errors import SelectgymError
from selectgym.proxies.embeddings import embed_examples
from selectgym.proxies.features.base import Feature, choice
from selectgym.proxies.gradients import ADAM_EPS_FORMS, adam_normalise, length_batches, per_example_grads
from selectgym.proxies.losses import sft_losses


def sft_pass(proxy, examples: Sequence[Example], adam_eps: str | None = None) -> dict[str, np.ndarray]:
    """Projected raw SFT gradients (``grad``), losses and, given ``adam_eps``, Adam-normalised gradients
    (``grad_adam``) at the loaded checkpoint: one backward pass per batch. Full gradients stay on the model's
    device and are projected there; only the projected columns come back."""
    cfg, projector = proxy.cfg, proxy.projector
    out = {"grad": np.zeros((len(examples), projector.dim_out), dtype=np.float32),
           "loss": np.zeros(len(examples), dtype=np.float32)}
    if adam_eps is not None:
        out["grad_adam"] = np.zeros_like(out["grad"])
    rendered = [render_example(proxy.tokenizer, ex, cfg.max_length) for ex in examples]
    for rows in length_batches([len(r.input_ids) for r in rendered], cfg.batch_size):
        batch = collate([rendered[i] for i in rows], proxy.tokenizer.pad_token_id)
        full, losses = per_example_grads(proxy.model, batch, reduction="mean", return_losses=True)
        out["grad"][rows] = projector.project(full).cpu().numpy()
        out["loss"][rows] = losses.float().cpu().numpy()
        if adam_eps is not None:
            out["grad_adam"][rows] = projector.project(adam_normalise(full, *proxy.moments, eps_form=adam_eps)
                                                       ).cpu().numpy()
    return out


def checkpoint_pass(proxy, examples: Sequence[Example], adam_eps: str | None = None) -> dict[str, np.ndarray]:
    """``sft_pass`` at every checkpoint of the proxy (``name@ckpt``) and the final one under the plain names,
    which envs and the other selectors read. The final checkpoint stays loaded."""
    names = list(proxy.states)
    if len(names) <= 1:
        return sft_pass(proxy, examples, adam_eps)
    out: dict[str, np.ndarray] = {}
    for name in names:
        proxy.use(name)
        grads = sft_pass(proxy, examples, adam_eps)
        out.update({f"{k}@{name}": v for k, v in grads.items() if k != "loss"})
    out.update(grads)
    return out


def val_grads(proxy, examples: Sequence[Example], cache: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Validation SFT gradients of the reference answers (never Adam-normalised) at every checkpoint: what LESS
    and the envs' alignment compare the training gradients with."""
    cache = {} if cache is None else cache
    if "val_grad" not in cache:
        cache["val_grad"] = _named(checkpoint_pass(proxy, examples), "grad")
    return cache["val_grad"]


def _shared_pass(proxy, examples: Sequence[Example], cache: dict[str, Any]) -> dict[str, np.ndarray]:
    """The shard's one SFT pass, Adam-normalised too when ``grad_adam`` is asked for."""
    if "sft" not in cache:
        adam = proxy.cfg.feature("grad_adam").adam_eps if "grad_adam" in proxy.cfg.features else None
        cache["sft"] = checkpoint_pass(proxy, examples, adam)
    return cache["sft"]


def _named(arrays: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """``name`` and its ``name@ckpt`` twins."""
    return {k: v for k, v in arrays.items() if k.partition("@")[0] == name}


@dataclass
class _SftGradient(Feature):
    """A projected SFT gradient from the shard's one shared pass, compared with the validation SFT gradient."""

    name = "sft_gradient"  # each subclass names its array
    val_arrays = ("grad",)

    def train(self, proxy, examples, cache):
        return _named(_shared_pass(proxy, examples, cache), self.name)

    def val(self, proxy, examples, cache):
        return val_grads(proxy, examples, cache)


@dataclass
class Grad(_SftGradient):
    name = "grad"
    help = "projected SFT gradient over the LoRA parameters (and the validation set's, for LESS and alignment)"
    default = True
    train_arrays = ("grad",)


@dataclass
class GradAdam(_SftGradient):
    name = "grad_adam"
    help = "projected Adam-normalised SFT gradient (LESS, NICE), compared with the validation SFT gradient"
    train_arrays = ("grad_adam",)

    adam_eps: str = field(default="inside", metadata={
        "help": "grad_adam's eps: inside the root, m/sqrt(v+eps), as LESS's and NICE's code (default), or outside, "
                "m/(sqrt(v)+eps), as torch's Adam"})

    def __post_init__(self) -> None:
        choice("adam_eps", self.adam_eps, ADAM_EPS_FORMS)

    @classmethod
    def in_default(cls, gradient_type):
        return gradient_type == "adam"

    def check_config(self, cfg):
        if cfg.warmup_steps == 0 and cfg.warmup_epochs == 0:
            raise SelectgymError("grad_adam needs Adam moments from a warm-up: set warmup_steps >= 1, or drop "
                                 "grad_adam (gradient_type sgd)")


@dataclass
class Loss(Feature):
    name = "loss"
    help = "SFT loss, token mean over the response"
    default = True
    train_arrays = ("loss",)

    def train(self, proxy, examples, cache):
        if set(proxy.cfg.features) & {"grad", "grad_adam"}:
            return {"loss": _shared_pass(proxy, examples, cache)["loss"]}
        cfg = proxy.cfg
        return {"loss": sft_losses(proxy.model, proxy.tokenizer, examples, batch_size=cfg.batch_size,
                                   max_length=cfg.max_length)}


def response_lengths(tokenizer, examples: Sequence[Example]) -> np.ndarray:
    """Tokens of each example's SFT target (with the end-of-sequence token), not truncated."""
    eos = 1 if tokenizer.eos_token_id is not None else 0
    texts = [ex.target for ex in examples]
    return np.array([len(ids) + eos for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]],
                    dtype=np.float32)


@dataclass
class Length(Feature):
    name = "length"
    help = "response tokens"
    default = True
    train_arrays = ("length",)

    def train(self, proxy, examples, cache):
        return {"length": response_lengths(proxy.tokenizer, examples)}


@dataclass
class Embedding(Feature):
    name = "embedding"
    help = "MiniLM sentence embedding of prompt + response (the target examples' too, to tell their subtasks apart)"
    default = True
    train_arrays = ("embedding",)
    val_arrays = ("embedding",)

    embedding_batch_size: int = field(default=64, metadata={"help": "texts per MiniLM batch"})

    def __post_init__(self) -> None:
        if self.embedding_batch_size < 1:
            raise SelectgymError(f"embedding_batch_size must be >= 1, got {self.embedding_batch_size}")

    def train(self, proxy, examples, cache):
        return {"embedding": embed_examples(examples, batch_size=self.embedding_batch_size, device=str(proxy.device))}

    def val(self, proxy, examples, cache):
        return self.train(proxy, examples, cache)
