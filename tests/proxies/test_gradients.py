"""Batched per-example LoRA gradients against the one-backward-per-sequence reference; Adam normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selectgym.data.render import Rendered, collate
from selectgym.errors import SelectgymError
from selectgym.proxies.gradients import (
    adam_normalise,
    adam_state,
    grad_dim,
    loop_per_example_grads,
    per_example_grads,
    sft_grads,
)
from selectgym.proxies.lora import ALL_LINEAR, lora_parameters
from selectgym.proxies.projection import SJLTProjector

# (length, prompt length): different paddings, a one-token response, a sequence with no response at all
SHAPES = [(14, 5), (7, 2), (22, 12), (6, 5), (9, 9)]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


@pytest.fixture()
def batch(tokenizer):
    gen = torch.Generator().manual_seed(0)
    items = [Rendered(torch.randint(10, 3000, (n,), generator=gen).tolist(), [0] * p + [1] * (n - p))
             for n, p in SHAPES]
    return collate(items, tokenizer.pad_token_id)


def test_lora_covers_all_seven_llama_linears(tiny_lora):
    names = [n for n, _ in lora_parameters(tiny_lora)]
    assert all(any(f".{m}.lora_A." in n for n in names) for m in ALL_LINEAR)
    assert grad_dim(tiny_lora) == sum(p.numel() for _, p in lora_parameters(tiny_lora))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_batched_matches_loop(tiny_lora, batch, reduction):
    fast, fast_loss = per_example_grads(tiny_lora, batch, reduction=reduction, return_losses=True)
    ref, ref_loss = loop_per_example_grads(tiny_lora, batch, reduction=reduction, return_losses=True)
    assert fast.shape == (len(SHAPES), grad_dim(tiny_lora)) and fast.dtype == torch.float32
    for r in range(4):
        assert ref[r].norm() > 0
        assert rel_err(fast[r], ref[r]) <= 1e-4
    assert torch.equal(fast[4], torch.zeros_like(fast[4])) and torch.equal(ref[4], fast[4])
    torch.testing.assert_close(fast_loss, ref_loss, rtol=1e-5, atol=1e-6)


def test_response_mask_over_padding_does_not_leak(tiny_lora, batch):
    """A response mask that also marks padding counts only real tokens, as ``sequence_logps`` does."""
    leaky = dict(batch)
    leaky["response_mask"] = batch["response_mask"].clone()
    leaky["response_mask"][:4][batch["attention_mask"][:4] == 0] = 1  # padding marked as response
    assert not torch.equal(leaky["response_mask"], batch["response_mask"])
    clean, clean_loss = per_example_grads(tiny_lora, batch, return_losses=True)
    fast, fast_loss = per_example_grads(tiny_lora, leaky, return_losses=True)
    ref, ref_loss = loop_per_example_grads(tiny_lora, leaky, return_losses=True)
    torch.testing.assert_close(fast_loss, clean_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ref_loss, clean_loss, rtol=1e-5, atol=1e-6)
    for r in range(4):
        assert rel_err(fast[r], clean[r]) <= 1e-4


def test_mean_is_sum_over_response_tokens(tiny_lora, batch):
    mean = per_example_grads(tiny_lora, batch, reduction="mean")
    total = per_example_grads(tiny_lora, batch, reduction="sum")
    counts = torch.tensor([n - p for n, p in SHAPES[:4]], dtype=torch.float32)
    for r in range(4):
        assert rel_err(mean[r] * counts[r], total[r]) <= 1e-5


def test_weights_and_groups_match_loop(tiny_lora, batch):
    weights = torch.tensor([0.5, -2.0, 1.5, 3.0, 1.0])
    groups = torch.tensor([2, 0, 2, 0, 1])
    fast = per_example_grads(tiny_lora, batch, weights=weights, groups=groups, n_groups=4)
    ref = loop_per_example_grads(tiny_lora, batch, weights=weights, groups=groups, n_groups=4)
    single = per_example_grads(tiny_lora, batch)
    assert fast.shape == (4, grad_dim(tiny_lora))
    for r in (0, 2):
        assert rel_err(fast[r], ref[r]) <= 1e-4
    assert rel_err(fast[2], 0.5 * single[0] + 1.5 * single[2]) <= 1e-5
    assert torch.equal(fast[3], torch.zeros_like(fast[3]))


def test_default_groups_and_bad_groups(tiny_lora, batch):
    assert per_example_grads(tiny_lora, batch, groups=torch.tensor([0, 0, 1, 1, 1])).shape[0] == 2
    with pytest.raises(SelectgymError, match="n_groups"):
        per_example_grads(tiny_lora, batch, groups=torch.tensor([0, 0, 3, 1, 1]), n_groups=2)
    with pytest.raises(SelectgymError, match="one entry per sequence"):
        per_example_grads(tiny_lora, batch, weights=torch.ones(3))
    with pytest.raises(SelectgymError, match="reduction"):
        per_example_grads(tiny_lora, batch, reduction="token")


def test_no_grad_left_and_mode_restored(tiny_lora, batch):
    tiny_lora.train()
    tiny_lora.base_model.model.model.layers[0].eval()
    before = {n: m.training for n, m in tiny_lora.named_modules()}
    per_example_grads(tiny_lora, batch)
    loop_per_example_grads(tiny_lora, batch)
    assert all(p.grad is None for p in tiny_lora.parameters())
    assert {n: m.training for n, m in tiny_lora.named_modules()} == before


def test_dropout_is_off_during_the_call(tokenizer, batch):
    from selectgym.proxies.lora import LoraSpec, attach_lora
    from selectgym.proxies.models import TinyConfig, tiny_model

    model = attach_lora(tiny_model(tokenizer, TinyConfig(seed=0)), LoraSpec(dropout=0.5))
    with torch.no_grad():
        for _, p in lora_parameters(model):
            p.fill_(0.03)
    model.train()
    first = per_example_grads(model, batch)
    assert torch.equal(first, per_example_grads(model, batch))
    assert rel_err(first[0], loop_per_example_grads(model, batch)[0]) <= 1e-4


def test_bfloat16_model_returns_float32_close_to_fp32(tokenizer, batch):
    from selectgym.proxies.lora import attach_lora
    from selectgym.proxies.models import TinyConfig, tiny_model

    model = attach_lora(tiny_model(tokenizer, TinyConfig(seed=0)))
    with torch.no_grad():
        for _, p in lora_parameters(model):
            p.copy_(torch.full_like(p, 0.02))
    ref = per_example_grads(model, batch)
    low = per_example_grads(model.to(torch.bfloat16), batch)
    assert low.dtype == torch.float32
    assert rel_err(low[:4], ref[:4]) < 0.1


def test_adam_normalise_hand_computed():
    g = torch.tensor([[1.0, -2.0, 0.0]])
    m = torch.tensor([0.1, 0.0, -0.5])
    v = torch.tensor([0.01, 0.0, 0.25])
    # m' = 0.9 m + 0.1 g ; v' = 0.999 v + 0.001 g^2 ; LESS: out = m' / sqrt(v' + 1e-8)
    m1 = [0.09 + 0.1, -0.2, -0.45]
    v1 = [0.00999 + 0.001, 0.004, 0.24975]
    expected = torch.tensor([[m1[i] / (v1[i] + 1e-8) ** 0.5 for i in range(3)]])
    torch.testing.assert_close(adam_normalise(g, m, v), expected)
    outside = torch.tensor([[m1[i] / (v1[i] ** 0.5 + 1e-8) for i in range(3)]])
    torch.testing.assert_close(adam_normalise(g, m, v, eps_form="outside"), outside)
    # zero moments: the first Adam step is g * 0.1 / sqrt(0.001 g^2 + 1e-8)
    first = adam_normalise(g, torch.zeros(3), torch.zeros(3))
    torch.testing.assert_close(first, torch.tensor([[0.1 / (0.001 + 1e-8) ** 0.5, -0.2 / (0.004 + 1e-8) ** 0.5, 0.0]]))
    with pytest.raises(SelectgymError, match="does not match"):
        adam_normalise(g, torch.zeros(4), torch.zeros(4))
    with pytest.raises(SelectgymError, match="adam_eps"):
        adam_normalise(g, m, v, eps_form="middle")


def test_adam_normalise_forms_differ_where_sqrt_v_is_below_sqrt_eps():
    # g = 1e-6 on fresh moments: m' = 1e-7, v' = 1e-15, sqrt(v') = 3.16e-8 < sqrt(eps) = 1e-4
    g = torch.tensor([[1e-6]], dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    inside = adam_normalise(g.float(), zero.float(), zero.float())
    outside = adam_normalise(g.float(), zero.float(), zero.float(), eps_form="outside")
    assert inside.item() == pytest.approx(1e-7 / (1e-15 + 1e-8) ** 0.5, rel=1e-4)  # ~1e-3
    assert outside.item() == pytest.approx(1e-7 / (1e-15 ** 0.5 + 1e-8), rel=1e-4)  # ~2.4
    assert outside.item() > 1000 * inside.item()


def _stepped_adam(model, batch):
    params = [p for _, p in lora_parameters(model)]
    opt = torch.optim.AdamW(params[:-2], lr=1e-3)  # the last two parameters get no state
    per_example_grads(model, batch)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float().mean()
    out.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return opt


def test_adam_state_follows_lora_parameter_order(tiny_lora, batch):
    opt = _stepped_adam(tiny_lora, batch)
    exp_avg, exp_avg_sq = adam_state(tiny_lora, opt)
    assert exp_avg.shape == exp_avg_sq.shape == (grad_dim(tiny_lora),)
    offset = 0
    params = lora_parameters(tiny_lora)
    for i, (_, p) in enumerate(params):
        chunk = slice(offset, offset + p.numel())
        if i < len(params) - 2:
            assert torch.equal(exp_avg[chunk], opt.state[p]["exp_avg"].flatten())
            assert torch.equal(exp_avg_sq[chunk], opt.state[p]["exp_avg_sq"].flatten())
        else:
            assert not exp_avg[chunk].any() and not exp_avg_sq[chunk].any()
        offset += p.numel()
    with pytest.raises(SelectgymError, match="Adam"):
        adam_state(tiny_lora, torch.optim.SGD([params[0][1]], lr=0.1))


def test_sft_grads_rows_in_input_order_with_projection_and_adam(tiny_lora, tokenizer, suite_dir, batch):
    from selectgym.data import load_pool
    from selectgym.data.render import render_example

    examples = list(load_pool(suite_dir / "sft.jsonl"))[:7]
    exact, losses = sft_grads(tiny_lora, tokenizer, examples, batch_size=3, max_length=64, return_losses=True)
    assert exact.dtype == np.float32 and exact.shape == (7, grad_dim(tiny_lora))
    for i in (0, 4, 6):
        one = collate([render_example(tokenizer, examples[i], max_length=64)], tokenizer.pad_token_id)
        ref, ref_loss = loop_per_example_grads(tiny_lora, one, return_losses=True)
        assert rel_err(torch.from_numpy(exact[i]), ref[0]) <= 1e-4
        assert abs(losses[i] - float(ref_loss[0])) < 1e-4

    projector = SJLTProjector(grad_dim(tiny_lora), 256, seed=3)
    projected = sft_grads(tiny_lora, tokenizer, examples, projector=projector, batch_size=4, max_length=64)
    np.testing.assert_allclose(projected, projector.project(torch.from_numpy(exact)).numpy(), rtol=1e-4, atol=1e-5)

    with pytest.raises(SelectgymError, match="optimizer_state"):
        sft_grads(tiny_lora, tokenizer, examples, gradient_type="adam")
    state = adam_state(tiny_lora, _stepped_adam(tiny_lora, batch))
    adam = sft_grads(tiny_lora, tokenizer, examples[:3], gradient_type="adam", optimizer_state=state, max_length=64)
    sgd = sft_grads(tiny_lora, tokenizer, examples[:3], max_length=64)
    expected = adam_normalise(torch.from_numpy(sgd), *state).numpy()
    np.testing.assert_allclose(adam, expected, rtol=1e-3, atol=1e-4)
    assert not np.allclose(adam, sgd, atol=1e-3)


@pytest.mark.cuda
def test_batched_matches_loop_on_cuda_and_runs_in_bf16(tiny_lora, batch):
    model = tiny_lora.to("cuda")
    fast = per_example_grads(model, batch)
    ref = loop_per_example_grads(model, batch)
    assert fast.device.type == "cuda"
    for r in range(4):
        assert rel_err(fast[r], ref[r]) <= 1e-4
    low = per_example_grads(model.to(torch.bfloat16), batch)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert rel_err(low[:4], fast[:4]) < 0.1
