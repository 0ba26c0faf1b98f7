"""Re-selection during training: the schedule, the budget, and what the model actually trains on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from selectgym.errors import SelectgymError
from selectgym.finetune.reselect import ActiveSubset, schedule


def test_schedule_matches_dataflex():
    # total steps = warmup_step + update_step * update_times; re-select after warmup, then every update_step
    assert schedule(2, 3, 2) == [2, 5]
    assert schedule(10, 10, 3) == [10, 20, 30]
    assert schedule(5, 1, 0) == []


def test_active_subset_streams_only_active_rows_and_restarts_on_swap():
    rows = [{"x": i} for i in range(10)]
    subset = ActiveSubset(rows, [f"e{i}" for i in range(10)], seed=3)
    subset.set_active(["e1", "e4", "e7"])
    stream = iter(subset)
    first = [next(stream)["x"] for _ in range(9)]
    assert sorted(first[:3]) == [1, 4, 7] and sorted(first[3:6]) == [1, 4, 7]  # whole passes, reshuffled
    subset.set_active(["e0", "e9"])
    assert {next(stream)["x"] for _ in range(4)} <= {1, 4, 7}  # a running iterator keeps its pass
    fresh = iter(subset)
    assert sorted(next(fresh)["x"] for _ in range(2)) == [0, 9]
    same_seed = ActiveSubset(rows, [f"e{i}" for i in range(10)], seed=3)
    same_seed.set_active(["e1", "e4", "e7"])
    again = iter(same_seed)
    assert [next(again)["x"] for _ in range(9)] == first


def test_active_subset_rejects_unknown_or_repeated_ids():
    subset = ActiveSubset([{"x": 0}, {"x": 1}], ["a", "b"])
    with pytest.raises(SelectgymError, match="not in the training rows"):
        subset.set_active(["a", "zzz"])
    with pytest.raises(SelectgymError, match="distinct"):
        subset.set_active(["a", "a"])


class TrainedOn(TrainerCallback):
    """Which pool ids each optimizer step's forward pass saw (read from the model's own inputs)."""

    def __init__(self) -> None:
        self.by_step: dict[int, list[str]] = {}
        self.by_tokens: dict[tuple[int, ...], str] = {}  # filled once the trainer has tokenised the pool
        self.step = 0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, args_, kwargs_):
            if not module.training:  # re-scoring runs the model in eval mode; only training batches count
                return
            ids, mask = kwargs_["input_ids"], kwargs_["attention_mask"]
            for row, m in zip(ids, mask, strict=True):
                tokens = tuple(row[m.bool()].tolist())
                self.by_step.setdefault(self.step + 1, []).append(self.by_tokens[tokens])

        model.register_forward_pre_hook(hook, with_kwargs=True)

    def on_step_begin(self, args, state, control, **kwargs):
        self.step = state.global_step


class RecordingRescore:
    """A hand-written scorer: a known new subset each call, and a record of what it was given."""

    name = "recording"

    def __init__(self, budget: int) -> None:
        self.budget, self.calls = budget, []

    def __call__(self, model, tokenizer, optimizer, pool, step):
        torch_opt = optimizer.optimizer
        moments = sum(len(torch_opt.state[p]) > 0 for g in torch_opt.param_groups for p in g["params"])
        self.calls.append({"step": step, "training": model.training, "moments": moments, "pool": len(pool)})
        start = 3 * len(self.calls)
        return pool.ids[start:start + self.budget]


@pytest.mark.slow
def test_reselection_happens_at_the_right_steps_and_training_follows(make_cfg, sft_pool, monkeypatch):
    from selectgym.finetune import reselect
    from selectgym.finetune.train import train

    trained = TrainedOn()
    original_install = reselect.install

    def install_and_index(trainer, pool, rescore, tokenizer, cfg):
        callback = original_install(trainer, pool, rescore, tokenizer, cfg)
        subset = trainer.train_dataset
        trained.by_tokens.update({tuple(subset.rows[i]["input_ids"]): ex_id for i, ex_id in enumerate(subset.ids)})
        return callback

    monkeypatch.setattr(reselect, "install", install_and_index)
    rescore = RecordingRescore(budget=4)
    cfg = make_cfg(method="sft", reselect="random", budget=4, warmup_step=2, update_step=3, update_times=2,
                   max_steps=10, batch_size=2, lr=1e-3)
    result = train(cfg, sft_pool, rescore=rescore, callbacks=[trained])

    assert [c["step"] for c in rescore.calls] == [2, 5]
    assert all(c["moments"] > 0 and c["pool"] == len(sft_pool) for c in rescore.calls)  # live Adam state
    history = result.selections
    assert [h["step"] for h in history] == [0, 2, 5]
    assert all(len(h["ids"]) == 4 for h in history)
    assert history[1]["ids"] == sft_pool.ids[3:7] and history[2]["ids"] == sft_pool.ids[6:10]
    assert sorted(trained.by_step) == list(range(1, 11)) and all(len(v) == 2 for v in trained.by_step.values())
    for step, ids in trained.by_step.items():
        active = history[0 if step <= 2 else 1 if step <= 5 else 2]["ids"]
        assert set(ids) <= set(active), f"step {step} trained on {ids}, outside the active subset {active}"
    # each selection is trained on in whole shuffled passes: 3 steps x 2 = 6 rows cover all 4 ids
    assert set(sum((trained.by_step[s] for s in (3, 4, 5)), [])) == set(history[1]["ids"])
    assert result.metrics["steps"] == 10


@pytest.mark.slow
def test_less_rescore_uses_the_live_adam_state(sft_pool, val_pool):
    from selectgym.finetune.reselect import GradientRescore
    from selectgym.proxies.gradients import adam_state, grad_dim, sft_grads
    from selectgym.proxies.lora import attach_lora
    from selectgym.proxies.models import load_model
    from selectgym.proxies.projection import make_projector
    from selectgym.proxies.vectors import cosine_matrix

    model, tok = load_model("tiny")
    model = attach_lora(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    from selectgym.data.render import collate, render_example
    from selectgym.proxies.gradients import sequence_losses

    batch = collate([render_example(tok, ex, 128) for ex in sft_pool[:4]], tok.pad_token_id)
    sequence_losses(model, batch).mean().backward()
    optimizer.step()
    optimizer.zero_grad()
    rescore = GradientRescore(val_pool, budget=3, name="less", proj_dim=256, seed=0, max_length=128)
    ids = rescore(model, tok, optimizer, sft_pool, step=7)

    projector = make_projector("sjlt", grad_dim(model), 256, 0)
    train = sft_grads(model, tok, sft_pool.examples, projector=projector, max_length=128, gradient_type="adam",
                      optimizer_state=adam_state(model, optimizer))
    val = sft_grads(model, tok, val_pool.examples, projector=projector, max_length=128)
    scores = cosine_matrix(train, val).mean(1)
    assert ids == [sft_pool.ids[i] for i in np.argsort(-scores, kind="stable")[:3]]
    raw = sft_grads(model, tok, sft_pool.examples, projector=projector, max_length=128)
    assert not np.allclose(raw, train)  # the Adam moments changed the training gradients that were scored


def test_nice_rescore_scores_with_the_nice_feature(sft_pool, val_pool):
    """The NICE path computes the target side with the registered ``nice`` feature (policy gradients)."""
    from selectgym.finetune.reselect import GradientRescore
    from selectgym.proxies.lora import attach_lora
    from selectgym.proxies.models import load_model

    model, tok = load_model("tiny")
    model = attach_lora(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    rescore = GradientRescore(val_pool, budget=3, name="nice", proj_dim=64, seed=0, max_length=128, rollouts=2,
                              max_new_tokens=4)
    ids = rescore(model, tok, optimizer, sft_pool, step=1)
    assert len(ids) == 3 and len(set(ids)) == 3 and set(ids) <= set(sft_pool.ids)


def test_rescore_needs_a_target(make_cfg):
    from selectgym.finetune.reselect import make_rescore

    cfg = make_cfg(reselect="less", budget=2, warmup_step=1, update_step=1, update_times=1)
    with pytest.raises(SelectgymError, match="--eval"):
        make_rescore(cfg, None, 12)


@pytest.mark.slow
def test_gradalign_rounds_score_chunks_and_train_on_the_kept_problems(make_cfg, suite_dir, val_pool):
    from selectgym.data import load_pool
    from selectgym.finetune.train import train

    problems = load_pool(suite_dir / "verifiable.jsonl")[:16]
    cfg = make_cfg(method="grpo", reselect="gradalign", gradalign_mode="align", budget=2, q=2, update_step=1,
                   update_times=2, batch_size=4, num_generations=2, max_completion_length=4, rollouts=2,
                   proj_dim=64, max_steps=-1, epochs=1.0)
    result = train(cfg, problems, eval_pool=val_pool)
    rounds = result.selections
    assert [r["round"] for r in rounds] == [0, 1]
    assert all(len(r["chunk"]) == 4 and len(r["ids"]) == 2 and set(r["ids"]) <= set(r["chunk"]) for r in rounds)
    assert not set(rounds[0]["chunk"]) & set(rounds[1]["chunk"])  # successive chunks of one shuffle
    assert [r["trained_steps"] for r in rounds] == [1, 1]
    assert result.metrics["steps"] == 2 and "accuracy" in result.metrics
