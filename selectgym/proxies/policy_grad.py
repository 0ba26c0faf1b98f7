"""Policy-gradient features from on-policy rollouts: NICE validation gradients and GradAlign GRPO gradients.

Both sample ``k`` completions per prompt from the current model, reward them, and turn the rewards into
per-rollout weights; the gradient of a prompt is then the weighted sum of its rollouts' NLL gradients.
That is a single grouped call of ``per_example_grads`` per batch (weights = the per-rollout coefficients,
groups = the prompt), and the projection is linear, so rows of one prompt split over batches are summed
after projecting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from selectgym.data.pool import Example
from selectgym.data.render import Rendered, collate, render, render_example
from selectgym.errors import SelectgymError
from selectgym.proxies.gradients import grad_dim, per_example_grads
from selectgym.proxies.rewards import CompletionReward
from selectgym.proxies.rollouts import Generator

log = logging.getLogger(__name__)

BASELINES = ("none", "mean")
POLICIES = ("vanilla", "rejection", "topk")
GRPO_STD_EPS = 1e-4


def _check_examples(examples: Sequence[Example]) -> list[Example]:
    examples = list(examples)
    for ex in examples:
        if not any(str(m.get("content") or "").strip() for m in ex.prompt):
            raise SelectgymError(f"example {ex.id} has an empty prompt; its raw fields did not map to a question "
                                 "(check the pool format)")
    return examples


def rollout_rewards(examples: list[Example], generator: Generator, reward: CompletionReward, *, k: int,
                    temperature: float, max_new_tokens: int, seed: int) -> tuple[list[list[str]], np.ndarray]:
    """``k`` completions per example from ``generator`` and their rewards ``(M, k)``."""
    if k < 1:
        raise SelectgymError(f"k (rollouts per prompt) must be >= 1, got {k}")
    completions = generator.generate([ex.prompt for ex in examples], n=k, max_new_tokens=max_new_tokens,
                                     temperature=temperature, seed=seed)
    flat_examples = [ex for ex in examples for _ in range(k)]
    flat = [c for row in completions for c in row]
    rewards = reward(flat_examples, flat).reshape(len(examples), k) if examples else np.zeros((0, k), np.float32)
    return completions, rewards


#: a REINFORCE weight below this share of the rewards' scale is rounding noise, not signal
WEIGHT_TOL = 1e-9


def nice_weights(rewards: np.ndarray, *, baseline: str = "none", policy: str = "vanilla", threshold: float = 0.5,
                 topk: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-rollout REINFORCE coefficients ``(M, K)`` and the fallback mask ``(M,)``.

    ``w_jk = keep_jk * (r_jk - b_j) / K`` with ``b_j`` the mean of the K rewards (``baseline="mean"``) or 0;
    ``keep`` is every sample (vanilla), ``r >= threshold`` (rejection) or the ``topk`` highest rewards (ties
    by sample order). A prompt falls back to its reference answer when no sample carries weight: every
    reward 0, no sample kept, or the baseline cancelling every reward.
    """
    if baseline not in BASELINES:
        raise SelectgymError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    if policy not in POLICIES:
        raise SelectgymError(f"policy must be one of {POLICIES}, got {policy!r}")
    rewards = np.asarray(rewards, dtype=np.float64)
    m, k = rewards.shape
    if policy == "vanilla":
        keep = np.ones((m, k), dtype=bool)
    elif policy == "rejection":
        keep = rewards >= threshold
    else:
        if not 1 <= topk <= k:
            raise SelectgymError(f"topk must lie in 1..k={k}, got {topk}")
        keep = np.zeros((m, k), dtype=bool)
        best = np.argsort(-rewards, axis=1, kind="stable")[:, :topk]
        np.put_along_axis(keep, best, True, axis=1)
    base = rewards.mean(1, keepdims=True) if baseline == "mean" else 0.0
    weights = np.where(keep, rewards - base, 0.0) / k
    # rewards that are equal up to rounding (0.7 - mean(0.7, 0.7, 0.7) is 1e-17, not 0) carry no weight
    scale = np.maximum(1.0, np.abs(rewards).max(1, keepdims=True)) if k else 1.0
    weights[np.abs(weights) <= WEIGHT_TOL * scale] = 0.0
    fallback = ~(weights != 0).any(1)
    return weights, fallback


def grpo_advantages(rewards: np.ndarray, std_normalise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Group-relative advantages ``A_i = r_i - mean(r)`` (``/ (std(r) + 1e-4)`` with ``std_normalise``, the
    unbiased std as in TRL) ``(N, k)`` and the signal mask ``(N,)``: 0 where all rewards of a group are equal."""
    rewards = np.asarray(rewards, dtype=np.float64)
    signal = rewards.max(1) > rewards.min(1) if rewards.shape[1] else np.zeros(len(rewards), dtype=bool)
    adv = rewards - rewards.mean(1, keepdims=True)
    if std_normalise and rewards.shape[1] > 1:
        adv = adv / (rewards.std(1, ddof=1, keepdims=True) + GRPO_STD_EPS)
    adv[~signal] = 0.0
    return adv, signal


def _response_tokens(item: Rendered) -> int:
    """Tokens a token-mean loss divides by (``per_example_grads`` counts ``response_mask[1:]``)."""
    return max(1, sum(item.response_mask[1:]))


def weighted_group_grads(model, tokenizer, items: Sequence[tuple[Rendered, float, int]], n_rows: int, *,
                         reduction: str, projector=None, batch_size: int = 8) -> np.ndarray:
    """``out[r] = P sum_{(x, w, r)} w * grad L(x)``: one grouped ``per_example_grads`` call per batch."""
    if batch_size < 1:
        raise SelectgymError(f"batch_size must be >= 1, got {batch_size}")
    width = projector.dim_out if projector is not None else grad_dim(model)
    out = np.zeros((n_rows, width), dtype=np.float32)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(items)), key=lambda i: len(items[i][0].input_ids))
    for start in range(0, len(order), batch_size):
        chunk = [items[i] for i in order[start:start + batch_size]]
        rows = sorted({row for _, _, row in chunk})
        local = {row: i for i, row in enumerate(rows)}
        batch = collate([item for item, _, _ in chunk], pad_id)
        grads = per_example_grads(model, batch, reduction=reduction,
                                  weights=torch.tensor([w for _, w, _ in chunk], dtype=torch.float32),
                                  groups=torch.tensor([local[r] for _, _, r in chunk]), n_groups=len(rows))
        if projector is not None:
            grads = projector.project(grads)
        out[rows] += grads.float().cpu().numpy()
    return out


def nice_validation_grads(model, tokenizer, examples: Sequence[Example], generator: Generator,
                          reward: CompletionReward, *, k: int = 4, baseline: str = "none", policy: str = "vanilla",
                          threshold: float = 0.5, topk: int = 1, temperature: float = 1.0, max_new_tokens: int = 64,
                          projector=None, batch_size: int = 8, max_length: int = 256,
                          seed: int = 0) -> tuple[np.ndarray, dict]:
    """NICE's validation gradients ``G_j = sum_k w_jk grad[-log pi(y_jk|x_j)]`` (summed token log-prob), ``(M, d)``.

    ``generator`` must sample from ``model`` itself (on-policy). Prompts whose samples carry no weight use
    the token-mean SFT gradient of their reference answer instead (``info["fallback"]``). ``info`` also has
    ``rewards`` and ``weights`` ``(M, K)`` and the ``completions``.
    """
    examples = _check_examples(examples)
    completions, rewards = rollout_rewards(examples, generator, reward, k=k, temperature=temperature,
                                           max_new_tokens=max_new_tokens, seed=seed)
    weights, fallback = nice_weights(rewards, baseline=baseline, policy=policy, threshold=threshold, topk=topk)
    items: list[tuple[Rendered, float, int]] = []
    for j, ex in enumerate(examples):
        if fallback[j]:
            ref = render_example(tokenizer, ex, max_length, field="target")
            items.append((ref, 1.0 / _response_tokens(ref), j))
            continue
        for c, completion in enumerate(completions[j]):
            if weights[j, c] != 0:
                items.append((render(tokenizer, ex.prompt, completion, max_length), float(weights[j, c]), j))
    if fallback.any():
        log.info("NICE: %d of %d prompts got no reward signal; using their reference answers", fallback.sum(),
                 len(examples))
    grads = weighted_group_grads(model, tokenizer, items, len(examples), reduction="sum", projector=projector,
                                 batch_size=batch_size)
    info = {"rewards": rewards, "weights": weights.astype(np.float32), "fallback": fallback,
            "completions": completions}
    return grads, info


def grpo_candidate_grads(model, tokenizer, examples: Sequence[Example], generator: Generator,
                         reward: CompletionReward, *, k: int = 4, std_normalise: bool = False,
                         temperature: float = 1.0, max_new_tokens: int = 64, projector=None, batch_size: int = 8,
                         max_length: int = 256, seed: int = 0,
                         pass_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GradAlign's candidate gradients ``g_c = grad sum_i A_i [-mean_t log pi(y_it)]`` ``(N, d)``.

    No clipping and no KL term. Groups whose rewards are all equal get a zero row and signal 0 without any
    gradient computed. Also returns ``signal`` ``(N,)`` (0/1) and ``pass_rate`` ``(N,)``, the share of
    rollouts with reward ``>= pass_threshold``.
    """
    examples = _check_examples(examples)
    completions, rewards = rollout_rewards(examples, generator, reward, k=k, temperature=temperature,
                                           max_new_tokens=max_new_tokens, seed=seed)
    adv, signal = grpo_advantages(rewards, std_normalise)
    items = [(render(tokenizer, ex.prompt, completions[c][i], max_length), float(adv[c, i]), c)
             for c, ex in enumerate(examples) if signal[c] for i in range(k) if adv[c, i] != 0]
    grads = weighted_group_grads(model, tokenizer, items, len(examples), reduction="mean", projector=projector,
                                 batch_size=batch_size)
    pass_rate = (rewards >= pass_threshold).mean(1).astype(np.float32)
    return grads, signal.astype(np.float32), pass_rate
