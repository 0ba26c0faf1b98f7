"""preference_accuracy(): the share of held-out pairs the trained policy's implicit DPO reward ranks right."""

from __future__ import annotations

import copy

import pytest
import torch

from selectgym.data.pool import Example, Pool
from selectgym.data.render import render
from selectgym.errors import SelectgymError
from selectgym.finetune.evaluate import preference_accuracy

PAIRS = [("Calculate 2 + 2.", "4", "5"), ("Spell cat backward.", "tac", "act"), ("What is 3 * 3?", "9", "12"),
         ("gcd(6, 4)?", "2", "7"), ("Count the bits of 7.", "3", "8")]


def pairs(swap: bool = False) -> Pool:
    return Pool(tuple(Example(f"p{i}", [{"role": "user", "content": p}], chosen=r if swap else c,
                              rejected=c if swap else r) for i, (p, c, r) in enumerate(PAIRS)), "preference")


def logp(model, tokenizer, prompt, reply) -> float:
    """Summed log-probability of the reply's tokens (end-of-sequence included), by hand."""
    item = render(tokenizer, prompt, reply)
    ids = torch.tensor([item.input_ids])
    with torch.no_grad():
        logits = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    return sum(logits[t - 1, ids[0, t]].item() for t in range(1, ids.shape[1]) if item.response_mask[t])


def by_hand(model, tokenizer, pool: Pool) -> float:
    wins = []
    for ex in pool:
        policy = {f: logp(model, tokenizer, ex.prompt, getattr(ex, f)) for f in ("chosen", "rejected")}
        with model.disable_adapter():
            ref = {f: logp(model, tokenizer, ex.prompt, getattr(ex, f)) for f in ("chosen", "rejected")}
        wins.append(policy["chosen"] - ref["chosen"] > policy["rejected"] - ref["rejected"])
    return sum(wins) / len(wins)


def test_it_is_the_share_of_pairs_whose_log_ratio_margin_is_positive(tiny_lora, tokenizer):
    tiny_lora.eval()
    got = preference_accuracy(tiny_lora, tokenizer, pairs(), batch_size=2)
    assert got == pytest.approx(by_hand(tiny_lora, tokenizer, pairs()))
    # no ties with a random adapter: swapping chosen and rejected turns every win into a loss
    assert preference_accuracy(tiny_lora, tokenizer, pairs(swap=True)) == pytest.approx(1.0 - got)


def test_an_untrained_adapter_ranks_nothing_above(tokenizer):
    from selectgym.proxies.lora import attach_lora
    from selectgym.proxies.models import TinyConfig, tiny_model

    fresh = attach_lora(tiny_model(tokenizer, TinyConfig(seed=0)), seed=0)  # B = 0: the policy is its reference
    assert preference_accuracy(fresh, tokenizer, pairs()) == 0.0
    assert preference_accuracy(fresh, tokenizer, pairs(swap=True)) == 0.0


def test_training_the_adapter_towards_the_chosen_replies_forces_every_pair_right(tokenizer):
    """A few steps of the DPO objective by hand (on the pairs themselves) make the margin positive on each."""
    from selectgym.data.render import collate
    from selectgym.proxies.dpo import sequence_logps
    from selectgym.proxies.lora import attach_lora, lora_parameters
    from selectgym.proxies.models import TinyConfig, tiny_model

    model = attach_lora(tiny_model(tokenizer, TinyConfig(seed=0)), seed=0)
    pool = pairs()
    chosen = collate([render(tokenizer, ex.prompt, ex.chosen) for ex in pool], tokenizer.pad_token_id)
    rejected = collate([render(tokenizer, ex.prompt, ex.rejected) for ex in pool], tokenizer.pad_token_id)
    opt = torch.optim.Adam([p for _, p in lora_parameters(model)], lr=1e-2)
    model.train()
    for _ in range(10):
        loss = -torch.nn.functional.logsigmoid(sequence_logps(model, chosen) - sequence_logps(model, rejected)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert preference_accuracy(model, tokenizer, pool) == 1.0
    assert preference_accuracy(model, tokenizer, pairs(swap=True)) == 0.0
    assert model.training  # the caller's mode is kept


def test_refuses_a_model_without_an_adapter_and_no_pairs(tiny_lora, tokenizer):
    base = copy.deepcopy(tiny_lora).merge_and_unload()
    with pytest.raises(SelectgymError, match="needs the trained peft model"):
        preference_accuracy(base, tokenizer, pairs())
    with pytest.raises(SelectgymError, match="no preference pairs"):
        preference_accuracy(tiny_lora, tokenizer, Pool((), "preference"))
