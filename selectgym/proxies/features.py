"""The features a proxy can compute, one small class each, looked up by name in ``FEATURES``.

A feature declares the arrays it writes to the training table (``train_arrays``) and to the validation
table (``val_arrays``), checks that the pools can give it (``check``), and computes its arrays for one shard
of the pool (``train``) or for the whole validation set (``val``) from a warmed-up ``Proxy``. Features that
share a pass (the SFT gradients, their Adam-normalised twin and the loss come from one backward per batch)
meet in the shard's ``cache``.

A new feature is one class here and one entry in ``FEATURES``; ``selectgym features --features NAME``
computes it, and the selection envs observe any scalar array a table holds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from selectgym.data.pool import Example, Pool
from selectgym.errors import SelectgymError
from selectgym.proxies.dpo import dpo_reward_gaps
from selectgym.proxies.embeddings import embed_examples
from selectgym.proxies.policy_grad import nice_validation_grads
from selectgym.proxies.warmup import sft_losses
from selectgym.utils import derive_seed

log = logging.getLogger(__name__)


class Feature:
    """One named feature: the arrays it writes and how to compute them from the proxy."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    train_arrays: ClassVar[tuple[str, ...]] = ()
    val_arrays: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check(cls, cfg, pool: Pool, val: Pool | None) -> None:
        """Raise a one-line error when these pools cannot give the feature (``cfg``: a ``FeatureConfig``)."""

    @classmethod
    def train(cls, proxy, examples: Sequence[Example], cache: dict[str, Any]) -> dict[str, np.ndarray]:
        """The feature's training-table arrays for one shard (``proxy``: the warmed-up ``Proxy``)."""
        return {}

    @classmethod
    def val(cls, proxy, examples: Sequence[Example], cache: dict[str, Any]) -> dict[str, np.ndarray]:
        """The feature's validation-table arrays."""
        return {}


def _sft_pass(proxy, examples: Sequence[Example], cache: dict[str, Any]) -> dict[str, np.ndarray]:
    """Raw and (when asked for) Adam-normalised gradients and losses at every checkpoint: one pass per shard."""
    if "sft" not in cache:
        cache["sft"] = proxy.checkpoint_grads(examples, adam="grad_adam" in proxy.cfg.features)
    return cache["sft"]


def _arrays(pass_out: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """``name`` and its ``name@ckpt`` twins from an SFT pass."""
    return {k: v for k, v in pass_out.items() if k.partition("@")[0] == name}


class Grad(Feature):
    name = "grad"
    help = "projected SFT gradient over the LoRA parameters"
    train_arrays = ("grad",)

    @classmethod
    def train(cls, proxy, examples, cache):
        return _arrays(_sft_pass(proxy, examples, cache), "grad")


class GradAdam(Feature):
    name = "grad_adam"
    help = "projected Adam-normalised SFT gradient (LESS, NICE)"
    train_arrays = ("grad_adam",)

    @classmethod
    def train(cls, proxy, examples, cache):
        return _arrays(_sft_pass(proxy, examples, cache), "grad_adam")


class Loss(Feature):
    name = "loss"
    help = "SFT loss, token mean over the response"
    train_arrays = ("loss",)

    @classmethod
    def train(cls, proxy, examples, cache):
        if set(proxy.cfg.features) & {"grad", "grad_adam"}:
            return {"loss": _sft_pass(proxy, examples, cache)["loss"]}
        return {"loss": sft_losses(proxy.model, proxy.tokenizer, examples, batch_size=proxy.cfg.batch_size,
                                   max_length=proxy.cfg.max_length)}


def response_lengths(tokenizer, examples: Sequence[Example]) -> np.ndarray:
    """Tokens of each example's SFT target (with the end-of-sequence token), not truncated."""
    eos = 1 if tokenizer.eos_token_id is not None else 0
    texts = [ex.target for ex in examples]
    return np.array([len(ids) + eos for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]],
                    dtype=np.float32)


class Length(Feature):
    name = "length"
    help = "response tokens"
    train_arrays = ("length",)

    @classmethod
    def train(cls, proxy, examples, cache):
        return {"length": response_lengths(proxy.tokenizer, examples)}


class Embedding(Feature):
    name = "embedding"
    help = "MiniLM sentence embedding of prompt + response (the target examples' too, to tell their subtasks apart)"
    train_arrays = ("embedding",)
    val_arrays = ("embedding",)

    @classmethod
    def train(cls, proxy, examples, cache):
        return {"embedding": embed_examples(examples, batch_size=proxy.cfg.embedding_batch_size,
                                            device=str(proxy.device))}

    @classmethod
    def val(cls, proxy, examples, cache):
        return cls.train(proxy, examples, cache)


class DpoGap(Feature):
    name = "dpo_gap"
    help = "DPO implicit reward gap (preference pools)"
    train_arrays = ("dpo_gap",)

    @classmethod
    def check(cls, cfg, pool, val):
        odd = next((ex for ex in pool if ex.kind != "preference"), None)
        if odd is not None:
            raise SelectgymError(f"dpo_gap needs a preference pool (prompt/chosen/rejected); {pool.source} is "
                                 f"{pool.format} (example {odd.id!r}); drop dpo_gap from features for this pool")

    @classmethod
    def train(cls, proxy, examples, cache):
        cfg = proxy.cfg
        gaps = dpo_reward_gaps(proxy.model, None, proxy.tokenizer, list(examples), beta=cfg.dpo_beta,
                               reduction=cfg.dpo_reduction, batch_size=cfg.batch_size, max_length=cfg.max_length)
        return {"dpo_gap": np.asarray(gaps, dtype=np.float32)}


def _needs_answers(name: str, pool: Pool | None, cfg) -> None:
    if pool is None or cfg.completion_reward != "verifier":
        return
    odd = next((ex for ex in pool if ex.answer is None), None)
    if odd is not None:
        raise SelectgymError(f"{name} with the verifier reward needs problems with an answer; {pool.source} "
                             f"example {odd.id!r} has none (use a verifiable pool, or another reward)")


def nice_summary(summary: dict[str, Any] | None) -> str | None:
    """'3 of 48 validation prompts fell back to the reference answer (mean reward 0.42, 4 samples each)', with a
    warning when every prompt fell back: then NICE's validation gradients are LESS's."""
    if not summary:
        return None
    n, fell = int(summary["prompts"]), int(summary["fallback"])
    text = (f"{fell} of {n} validation prompts fell back to the reference answer (mean reward "
            f"{float(summary['mean_reward']):.3f}, {summary['samples']} samples each)")
    if n and fell == n:
        text += ("; WARNING: every prompt did, so NICE equals LESS here: the proxy earns no reward, use a "
                 "stronger proxy, more samples (k) or a softer reward")
    return text


class Nice(Feature):
    name = "nice"
    help = "NICE policy gradients of the validation prompts (validation table: pg_grad)"
    val_arrays = ("pg_grad",)

    @classmethod
    def check(cls, cfg, pool, val):
        if val is None:
            raise SelectgymError("nice computes validation policy gradients: give a validation file")
        _needs_answers("nice", val, cfg)

    @classmethod
    def val(cls, proxy, examples, cache):
        cfg = proxy.cfg
        pg, info = nice_validation_grads(
            proxy.model, proxy.tokenizer, list(examples), proxy.generator(), proxy.reward(), k=cfg.rollouts,
            baseline=cfg.nice_baseline, policy=cfg.nice_policy, threshold=cfg.nice_threshold, topk=cfg.nice_topk,
            temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, projector=proxy.projector,
            batch_size=cfg.batch_size, max_length=cfg.max_length, seed=derive_seed(cfg.seed, "nice"))
        summary = {"prompts": len(examples), "fallback": int(np.sum(info["fallback"])),
                   "mean_reward": float(np.mean(info["rewards"])), "samples": cfg.rollouts}
        if proxy.store is not None:
            proxy.store.update_meta(nice=summary)
        log.info("NICE validation gradients: %s", nice_summary(summary))
        return {"pg_grad": np.asarray(pg, dtype=np.float32)}


class Grpo(Feature):
    name = "grpo"
    help = "GRPO rollout gradients, reward signal and pass rates (verifiable pools)"
    train_arrays = ("grpo_grad", "grpo_signal", "pass_rate")
    val_arrays = ("grpo_grad", "pass_rate")

    @classmethod
    def check(cls, cfg, pool, val):
        _needs_answers("grpo", pool, cfg)

    @classmethod
    def train(cls, proxy, examples, cache):
        grads, signal, pass_rate = proxy.grpo(examples, derive_seed(proxy.cfg.seed, "grpo", examples[0].id))
        return {"grpo_grad": grads, "grpo_signal": signal, "pass_rate": pass_rate}

    @classmethod
    def val(cls, proxy, examples, cache):
        grads, _, pass_rate = proxy.grpo(examples, derive_seed(proxy.cfg.seed, "grpo-val"))
        return {"grpo_grad": grads, "pass_rate": pass_rate}


#: feature name -> class: what ``selectgym features --features`` may name, in computing order
FEATURES: dict[str, type[Feature]] = {cls.name: cls for cls in (Grad, GradAdam, Loss, Length, Embedding, DpoGap,
                                                                 Nice, Grpo)}

def feature_of_array(array: str) -> str:
    """The feature that writes an array (what a user must ask ``selectgym features`` for)."""
    base = array.partition("@")[0]
    for name, cls in FEATURES.items():
        if base in cls.train_arrays or base in cls.val_arrays:
            return name
    return base
