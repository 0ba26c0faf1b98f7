"""NICE validation gradients and GRPO candidate gradients against hand-assembled sums of loop gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selectgym.data import load_pool
from selectgym.data.render import collate, render
from selectgym.errors import SelectgymError
from selectgym.proxies import policy_grad
from selectgym.proxies.gradients import loop_per_example_grads, sft_grads
from selectgym.proxies.policy_grad import (
    grpo_advantages,
    grpo_candidate_grads,
    nice_validation_grads,
    nice_weights,
)
from selectgym.proxies.projection import make_projector
from selectgym.proxies.rewards import CompletionReward, VerifierReward
from selectgym.proxies.rollouts import Generator, TransformersGenerator
from tests.conftest import build_tiny_lora

COMPLETIONS = [["121", "12", "I think 5"],  # rewards 1, 0.5, 0
               ["nope", "zero", "no"],  # rewards 0, 0, 0: falls back to the reference answer
               ["12", "121", "121"]]  # rewards 0.5, 1, 1
TABLE = {"121": 1.0, "12": 0.5}


class FixedGenerator(Generator):
    """Returns the completions above and records what it was asked."""

    def __init__(self, completions):
        self.completions, self.calls = completions, []

    def _generate(self, prompts, n, *, max_new_tokens, temperature, top_p, seed):
        self.calls.append({"prompts": prompts, "n": n, "temperature": temperature, "seed": seed})
        return [row[:n] for row in self.completions[:len(prompts)]]


class TableReward(CompletionReward):
    def _score(self, examples, completions):
        return [TABLE.get(c, 0.0) for c in completions]


@pytest.fixture(scope="module")
def examples(suite_dir):
    return list(load_pool(suite_dir / "validation.jsonl"))[:3]


@pytest.fixture(scope="module")
def tiny_lora(tokenizer):
    """The conftest's tiny LoRA model, built once for this module (the tests never change its weights)."""
    return build_tiny_lora(tokenizer)


@pytest.fixture(scope="module")
def rollout_grads(tiny_lora, tokenizer, examples):
    """Loop gradients of every completion, summed over tokens and token-mean: each ``(3, 3, D)``."""
    items = [render(tokenizer, ex.prompt, c, 256) for ex, row in zip(examples, COMPLETIONS, strict=True) for c in row]
    g_sum = loop_per_example_grads(tiny_lora, collate(items, tokenizer.pad_token_id), reduction="sum").numpy()
    tokens = np.array([sum(it.response_mask[1:]) for it in items], dtype=np.float32)
    return g_sum.reshape(3, 3, -1), (g_sum / tokens[:, None]).reshape(3, 3, -1)


def _nice(model, tokenizer, examples, **kw):
    gen = FixedGenerator(COMPLETIONS)
    grads, info = nice_validation_grads(model, tokenizer, examples, gen, TableReward(), k=3, batch_size=4, **kw)
    return grads, info, gen


def test_nice_weights_by_hand():
    r = np.array([[1.0, 0.5, 0.0], [0, 0, 0], [0.5, 1, 1]])
    w, fb = nice_weights(r)
    np.testing.assert_allclose(w, r / 3)
    np.testing.assert_array_equal(fb, [False, True, False])
    w, fb = nice_weights(r, baseline="mean")
    np.testing.assert_allclose(w, [[0.5 / 3, 0, -0.5 / 3], [0, 0, 0], [-1 / 3 / 3, 1 / 6 / 3, 1 / 6 / 3]])
    np.testing.assert_array_equal(fb, [False, True, False])
    w, _ = nice_weights(r, policy="rejection", threshold=0.75)
    np.testing.assert_allclose(w, [[1 / 3, 0, 0], [0, 0, 0], [0, 1 / 3, 1 / 3]])
    w, fb = nice_weights(r, policy="topk", topk=1)
    np.testing.assert_allclose(w, [[1 / 3, 0, 0], [0, 0, 0], [0, 1 / 3, 0]])  # ties: the first best sample
    # A baseline that cancels every reward leaves no signal: the prompt falls back too.
    _, fb = nice_weights(np.array([[1.0, 1.0]]), baseline="mean")
    assert fb.tolist() == [True]
    with pytest.raises(SelectgymError, match="topk"):
        nice_weights(r, policy="topk", topk=4)
    with pytest.raises(SelectgymError, match="baseline"):
        nice_weights(r, baseline="median")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_nice_falls_back_when_equal_rewards_cancel_up_to_rounding(dtype):
    """0.7 - mean(0.7, 0.7, 0.7) is ~1e-17 in float64, not 0: the weights vanish all the same."""
    rewards = np.array([[0.7, 0.7, 0.7], [0.1, 0.1, 0.1], [0.0, 0.0, 0.0], [0.7, 0.2, 0.7]], dtype=dtype)
    assert np.float64(rewards[0, 0]) - np.mean(rewards[0].astype(np.float64)) != 0 or dtype != np.float64
    w, fb = nice_weights(rewards, baseline="mean")
    assert fb.tolist() == [True, True, True, False]
    assert not w[:3].any()
    _, fb = nice_weights(rewards)  # without a baseline a constant positive reward is signal; all zeros is not
    assert fb.tolist() == [False, False, True, False]


def test_nice_vanilla_equals_hand_assembled_reinforce_sum(tiny_lora, tokenizer, examples, rollout_grads):
    g_sum, _ = rollout_grads
    grads, info, gen = _nice(tiny_lora, tokenizer, examples, temperature=0.9, seed=7)
    rewards = np.array([[TABLE.get(c, 0.0) for c in row] for row in COMPLETIONS])
    np.testing.assert_array_equal(info["rewards"], rewards)
    np.testing.assert_array_equal(info["fallback"], [False, True, False])
    for j in (0, 2):
        expected = sum(rewards[j, k] * g_sum[j, k] for k in range(3)) / 3
        np.testing.assert_allclose(grads[j], expected, rtol=1e-4, atol=1e-6)
    # The all-zero prompt uses its reference answer's token-mean SFT gradient.
    np.testing.assert_allclose(grads[1], sft_grads(tiny_lora, tokenizer, examples[1:2])[0], rtol=1e-4, atol=1e-6)
    call = gen.calls[0]
    assert call["n"] == 3 and call["temperature"] == 0.9 and call["seed"] == 7
    assert call["prompts"] == [ex.prompt for ex in examples]  # the raw chat prompts, not empty strings
    assert grads.dtype == np.float32


@pytest.mark.parametrize("options", [{"baseline": "mean"}, {"policy": "rejection", "threshold": 0.75},
                                     {"policy": "topk", "topk": 2}])
def test_nice_options_equal_their_weighted_sums(tiny_lora, tokenizer, examples, rollout_grads, options):
    g_sum, _ = rollout_grads
    grads, info, _ = _nice(tiny_lora, tokenizer, examples, **options)
    for j in (0, 2):
        expected = np.tensordot(info["weights"][j], g_sum[j], axes=1)
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(grads[j], expected, rtol=1e-4, atol=1e-6)
    assert info["fallback"].tolist() == [False, True, False]


def test_nice_projection_is_applied_per_batch_and_summed(tiny_lora, tokenizer, examples):
    full, _, _ = _nice(tiny_lora, tokenizer, examples)
    projector = make_projector("sjlt", full.shape[1], 64, seed=3)
    gen = FixedGenerator(COMPLETIONS)
    projected, _ = nice_validation_grads(tiny_lora, tokenizer, examples, gen, TableReward(), k=3, batch_size=2,
                                         projector=projector)
    expected = projector.project(torch.from_numpy(full)).numpy()
    np.testing.assert_allclose(projected, expected, rtol=1e-4, atol=1e-6)


def test_nice_on_policy_with_real_sampling_and_verifier(tiny_lora, tokenizer, examples):
    """A random tiny model never answers correctly: every prompt falls back to its reference answer."""
    gen = TransformersGenerator(tiny_lora, tokenizer, batch_size=4)
    grads, info = nice_validation_grads(tiny_lora, tokenizer, examples[:2], gen, VerifierReward(), k=2,
                                        max_new_tokens=3)
    assert info["rewards"].shape == (2, 2) and [len(c) for c in info["completions"]] == [2, 2]
    assert info["fallback"].all()
    np.testing.assert_allclose(grads, sft_grads(tiny_lora, tokenizer, examples[:2]), rtol=1e-4, atol=1e-6)


def test_empty_prompt_is_rejected(tiny_lora, tokenizer, examples):
    broken = examples[0].__class__(id="x", prompt=[{"role": "user", "content": " "}], answer="1")
    with pytest.raises(SelectgymError, match="empty prompt"):
        _nice(tiny_lora, tokenizer, [broken])


def test_grpo_advantages_by_hand():
    r = np.array([[1.0, 0, 0, 1], [1, 1, 1, 1], [0.5, 0, 0, 0]])
    adv, signal = grpo_advantages(r)
    np.testing.assert_allclose(adv, [[0.5, -0.5, -0.5, 0.5], [0, 0, 0, 0], [0.375, -0.125, -0.125, -0.125]])
    np.testing.assert_array_equal(signal, [True, False, True])
    adv, _ = grpo_advantages(r, std_normalise=True)
    std0 = np.sqrt(1 / 3)  # unbiased std of (1, 0, 0, 1)
    np.testing.assert_allclose(adv[0], np.array([0.5, -0.5, -0.5, 0.5]) / (std0 + 1e-4))
    np.testing.assert_array_equal(adv[1], 0)


@pytest.mark.parametrize("std_normalise", [False, True])
def test_grpo_rows_equal_advantage_weighted_token_mean_grads(tiny_lora, tokenizer, examples, rollout_grads,
                                                             monkeypatch, std_normalise):
    _, g_mean = rollout_grads
    completions = [*COMPLETIONS[:2], ["121", "121", "121"]]  # group 1: all 0, group 2: all 1 -> no signal
    seen = []

    def counting(model, batch, **kw):
        seen.append(batch["input_ids"].shape[0])
        return per_example_grads(model, batch, **kw)

    per_example_grads = policy_grad.per_example_grads
    monkeypatch.setattr(policy_grad, "per_example_grads", counting)
    grads, signal, pass_rate = grpo_candidate_grads(tiny_lora, tokenizer, examples, FixedGenerator(completions),
                                                    TableReward(), k=3, std_normalise=std_normalise, batch_size=8)
    np.testing.assert_array_equal(signal, [1, 0, 0])
    np.testing.assert_allclose(pass_rate, [2 / 3, 0, 1])
    adv, _ = grpo_advantages(np.array([[1.0, 0.5, 0.0]]), std_normalise)
    np.testing.assert_allclose(grads[0], np.tensordot(adv[0], g_mean[0], axes=1), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(grads[1:], 0)
    assert sum(seen) == 2  # only rollouts with a non-zero advantage (group 0's first and last) were differentiated
