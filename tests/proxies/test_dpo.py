"""DPO implicit reward gaps: summed response log-probs by hand, padding invariance, sign, adapter on/off."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from selectgym.data import load_pool
from selectgym.data.render import collate, render, render_example
from selectgym.errors import SelectgymError
from selectgym.proxies.dpo import dpo_reward_gaps, sequence_logps
from selectgym.proxies.lora import attach_lora
from selectgym.proxies.models import TinyConfig, tiny_model


@pytest.fixture(scope="module")
def pairs(suite_dir):
    return list(load_pool(suite_dir / "preference.jsonl"))[:2]


@pytest.fixture(scope="module")
def base(tokenizer):
    return tiny_model(tokenizer, TinyConfig(seed=0))


@pytest.fixture(scope="module")
def other(tokenizer):
    return tiny_model(tokenizer, TinyConfig(seed=1))


def test_summed_logp_equals_hand_computation(base, tokenizer, pairs):
    item = render_example(tokenizer, pairs[0], field="chosen")
    batch = collate([item], tokenizer.pad_token_id)
    with torch.no_grad():
        logits = base(input_ids=batch["input_ids"]).logits[0]
    logp = torch.log_softmax(logits.double(), -1)
    ids = item.input_ids
    expected = sum(logp[t - 1, ids[t]].item() for t in range(1, len(ids)) if item.response_mask[t])
    n_response = sum(item.response_mask[1:])
    with torch.no_grad():
        assert sequence_logps(base, batch, "sum").item() == pytest.approx(expected, rel=1e-5)
        assert sequence_logps(base, batch, "mean").item() == pytest.approx(expected / n_response, rel=1e-5)


def test_right_padding_changes_nothing(base, tokenizer, pairs):
    short = render(tokenizer, pairs[0].prompt, "12", max_length=256)
    long = render(tokenizer, pairs[1].prompt, "a long reply " * 30, max_length=256)
    assert len(long.input_ids) > 2 * len(short.input_ids)
    with torch.no_grad():
        alone = sequence_logps(base, collate([short], tokenizer.pad_token_id))
        padded = sequence_logps(base, collate([short, long], tokenizer.pad_token_id))
    assert padded[0].item() == pytest.approx(alone[0].item(), abs=1e-4)


def test_gap_is_beta_times_difference_of_log_ratios_and_signed(base, other, tokenizer, pairs):
    def logp(model, ex, field):
        with torch.no_grad():
            return sequence_logps(model, collate([render_example(tokenizer, ex, field=field)],
                                                 tokenizer.pad_token_id)).item()

    gaps = dpo_reward_gaps(other, base, tokenizer, pairs, beta=0.5, batch_size=2)
    expected = [0.5 * ((logp(other, ex, "chosen") - logp(base, ex, "chosen"))
                       - (logp(other, ex, "rejected") - logp(base, ex, "rejected"))) for ex in pairs]
    np.testing.assert_allclose(gaps, expected, rtol=1e-4, atol=1e-5)
    assert (np.sign(gaps) != 0).all()
    # Swapping chosen and rejected, or policy and reference, flips the sign.
    swapped = [ex.__class__(**{**ex.__dict__, "chosen": ex.rejected, "rejected": ex.chosen}) for ex in pairs]
    np.testing.assert_allclose(dpo_reward_gaps(other, base, tokenizer, swapped, beta=0.5), -gaps, atol=1e-5)
    np.testing.assert_allclose(dpo_reward_gaps(base, other, tokenizer, pairs, beta=0.5), -gaps, atol=1e-5)


def test_adapter_disabled_is_the_reference(tokenizer, pairs, tiny_lora, base):
    fresh = attach_lora(copy.deepcopy(base))  # peft initialises B = 0: policy == reference
    np.testing.assert_array_equal(dpo_reward_gaps(fresh, None, tokenizer, pairs), np.zeros(len(pairs)))
    tiny_lora.train()
    with_adapter_off = dpo_reward_gaps(tiny_lora, None, tokenizer, pairs, reduction="mean")
    with_base = dpo_reward_gaps(tiny_lora, base, tokenizer, pairs, reduction="mean")
    np.testing.assert_allclose(with_adapter_off, with_base, atol=1e-6)
    assert np.abs(with_adapter_off).max() > 1e-4
    assert tiny_lora.training  # the caller's mode is restored


def test_bad_inputs_are_one_line_errors(base, tokenizer, suite_dir, pairs):
    with pytest.raises(SelectgymError, match="peft policy"):
        dpo_reward_gaps(base, None, tokenizer, pairs)
    verifiable = list(load_pool(suite_dir / "verifiable.jsonl"))[:1]
    with pytest.raises(SelectgymError, match="preference pool"):
        dpo_reward_gaps(base, base, tokenizer, verifiable)
    with pytest.raises(SelectgymError, match="reduction"):
        dpo_reward_gaps(base, base, tokenizer, pairs, reduction="max")
