"""The features made from sampled completions: NICE's validation policy gradients and GRPO's rollout gradients.

Both draw ``rollouts`` samples per prompt from the proxy's generator and score them with its completion
reward (shared settings of ``FeatureConfig``); their own options are the fields below.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selectgym.data.pool import Example, Pool
from selectgym.errors import SelectgymError
from selectgym.proxies.features.base import Feature, choice
from selectgym.proxies.policy_grad import BASELINES, POLICIES, grpo_candidate_grads, nice_validation_grads
from selectgym.utils import derive_seed

log = logging.getLogger(__name__)


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


@dataclass
class Nice(Feature):
    name = "nice"
    help = "NICE policy gradients of the validation prompts (validation table: pg_grad)"
    needs_val = True
    rollouts = True
    val_arrays = ("pg_grad",)

    nice_baseline: str = field(default="none", metadata={"help": "NICE: subtract the mean reward (mean) or not (none)"})
    nice_policy: str = field(default="vanilla", metadata={"help": "NICE sample filter: vanilla, rejection or topk"})
    nice_threshold: float = field(default=0.5, metadata={"help": "NICE rejection: keep samples with reward >= this"})
    nice_topk: int = field(default=1, metadata={"help": "NICE topk: keep this many best samples per prompt"})

    def __post_init__(self) -> None:
        choice("nice_baseline", self.nice_baseline, BASELINES)
        choice("nice_policy", self.nice_policy, POLICIES)
        if self.nice_topk < 1:
            raise SelectgymError(f"nice_topk must be >= 1, got {self.nice_topk}")
        if not math.isfinite(self.nice_threshold):
            raise SelectgymError(f"--nice-threshold must be a number, e.g. 0.5; got {self.nice_threshold}")

    def check_config(self, cfg):
        if self.nice_policy == "topk" and self.nice_topk > cfg.rollouts:
            raise SelectgymError(f"nice_topk {self.nice_topk} is more than the {cfg.rollouts} rollouts; lower "
                                 f"nice_topk or raise rollouts")

    def check(self, cfg, pool, val):
        if val is None:
            raise SelectgymError("nice computes validation policy gradients: give a validation file")
        _needs_answers("nice", val, cfg)

    def val(self, proxy, examples, cache):
        cfg = proxy.cfg
        pg, info = nice_validation_grads(
            proxy.model, proxy.tokenizer, list(examples), proxy.generator(), proxy.reward(), k=cfg.rollouts,
            baseline=self.nice_baseline, policy=self.nice_policy, threshold=self.nice_threshold, topk=self.nice_topk,
            temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, projector=proxy.projector,
            batch_size=cfg.batch_size, max_length=cfg.max_length, seed=derive_seed(cfg.seed, "nice"))
        summary = {"prompts": len(examples), "fallback": int(np.sum(info["fallback"])),
                   "mean_reward": float(np.mean(info["rewards"])), "samples": cfg.rollouts}
        if proxy.store is not None:
            proxy.store.update_meta(nice=summary)
        log.info("NICE validation gradients: %s", nice_summary(summary))
        return {"pg_grad": np.asarray(pg, dtype=np.float32)}


def grpo_arrays(proxy, examples: Sequence[Example], seed: int, std_normalise: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(grpo_grad, grpo_signal, pass_rate)`` of these problems: ``rollouts`` samples each from the proxy."""
    cfg = proxy.cfg
    grads, signal, pass_rate = grpo_candidate_grads(
        proxy.model, proxy.tokenizer, list(examples), proxy.generator(), proxy.reward(), k=cfg.rollouts,
        std_normalise=std_normalise, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
        projector=proxy.projector, batch_size=cfg.batch_size, max_length=cfg.max_length, seed=seed)
    return (np.asarray(grads, dtype=np.float32), np.asarray(signal, dtype=np.float32),
            np.asarray(pass_rate, dtype=np.float32))


@dataclass
class Grpo(Feature):
    name = "grpo"
    help = "GRPO rollout gradients, reward signal and pass rates (verifiable pools)"
    pool_kind = "verifiable"
    rollouts = True
    train_arrays = ("grpo_grad", "grpo_signal", "pass_rate")
    val_arrays = ("grpo_grad", "pass_rate")

    std_normalise: bool = field(default=False, metadata={"help": "GRPO: divide advantages by the reward std"})

    def check(self, cfg, pool, val):
        _needs_answers("grpo", pool, cfg)

    def train(self, proxy, examples, cache):
        grads, signal, pass_rate = grpo_arrays(proxy, examples, derive_seed(proxy.cfg.seed, "grpo", examples[0].id),
                                               self.std_normalise)
        return {"grpo_grad": grads, "grpo_signal": signal, "pass_rate": pass_rate}

    def val(self, proxy, examples, cache):
        grads, _, pass_rate = grpo_arrays(proxy, examples, derive_seed(proxy.cfg.seed, "grpo-val"), self.std_normalise)
        return {"grpo_grad": grads, "pass_rate": pass_rate}
