"""Training with TRL on the tiny model: the adapter moves, the base stays, the SFT loss covers the completion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from selectgym.errors import SelectgymError
from tests.finetune.conftest import split_weights


class Snapshot(TrainerCallback):
    """Copies of the base and adapter weights as training starts."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.base, self.lora = split_weights(model)


def assert_adapter_moved_base_frozen(before: Snapshot, model) -> None:
    base, lora = split_weights(model)
    assert before.lora and set(lora) == set(before.lora)
    for name, weight in before.base.items():
        assert torch.equal(weight, base[name]), f"base weight {name} changed"
    moved = [n for n, w in before.lora.items() if not torch.allclose(w, lora[n])]
    assert len(moved) >= len(lora) // 2, f"only {len(moved)} of {len(lora)} adapter tensors changed"


@pytest.mark.slow
def test_sft_moves_adapter_and_keeps_base(make_cfg, sft_pool, val_pool):
    from selectgym.finetune.train import train

    snap = Snapshot()
    result = train(make_cfg(method="sft"), sft_pool, eval_pool=val_pool, callbacks=[snap])
    assert_adapter_moved_base_frozen(snap, result.model)
    assert result.metrics["steps"] == 2 and result.metrics["n"] == len(val_pool)
    assert (result.adapter_dir / "adapter_model.safetensors").exists()
    sidecar = json.loads((result.adapter_dir / "selectgym_finetune.json").read_text())
    assert sidecar["base_model"] == "tiny"


def test_sft_loss_covers_the_completion_only(make_cfg, sft_pool, tokenizer):
    from selectgym.finetune.trainers import build_trainer
    from selectgym.proxies.models import load_model

    model, tok = load_model("tiny")
    trainer = build_trainer(make_cfg(method="sft"), sft_pool[:2], model, tok)
    ex = sft_pool[0]
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    n = int(batch["attention_mask"][0].sum())
    trained = labels[:n] != -100
    # the trained tokens are exactly the tail that decodes to the response and the end-of-turn marker
    start = int(trained.nonzero()[0])
    assert trained[start:].all() and not trained[:start].any()
    assert torch.equal(labels[:n][trained], ids[:n][trained])
    assert tok.decode(ids[start:n]).strip() == f"{ex.target}<|im_end|>"
    assert ex.prompt[-1]["content"] in tok.decode(ids[:start])
    assert (labels[n:] == -100).all()


@pytest.mark.slow
def test_dpo_moves_adapter_and_keeps_base(make_cfg, suite_dir):
    from selectgym.data import load_pool
    from selectgym.finetune.train import train

    pairs = load_pool(suite_dir / "preference.jsonl")[:8]
    snap = Snapshot()
    result = train(make_cfg(method="dpo"), pairs, callbacks=[snap])
    assert_adapter_moved_base_frozen(snap, result.model)
    assert any("rewards/margins" in h for h in result.log_history)


def test_dpo_rejects_a_pool_without_pairs(make_cfg, sft_pool):
    from selectgym.finetune.train import train

    with pytest.raises(SelectgymError, match="preference pairs"):
        train(make_cfg(method="dpo"), sft_pool)


@pytest.mark.slow
def test_grpo_moves_adapter_and_keeps_base(make_cfg, suite_dir, reward_model_dir):
    from selectgym.data import load_pool
    from selectgym.finetune.train import train

    problems = load_pool(suite_dir / "verifiable.jsonl")[:8]
    cfg = make_cfg(method="grpo", batch_size=4, num_generations=2, max_completion_length=4,
                   completion_reward=str(reward_model_dir))
    snap = Snapshot()
    result = train(cfg, problems, callbacks=[snap])
    assert_adapter_moved_base_frozen(snap, result.model)
    stds = [h["reward_std"] for h in result.log_history if "reward_std" in h]
    assert stds and max(stds) > 0  # the reward model told completions apart, so there was a gradient


def test_verifier_reward_scores_each_completion_by_its_id(suite_dir):
    from selectgym.data import load_pool
    from selectgym.finetune.trainers import TrlVerifierReward

    problems = load_pool(suite_dir / "verifiable.jsonl")[:3]
    reward = TrlVerifierReward(problems)
    answers = [problems[0].answer, "definitely wrong", problems[2].answer]
    completions = [[{"role": "assistant", "content": a}] for a in answers]
    ids = [ex.id for ex in problems]
    assert reward(prompts=[ex.prompt for ex in problems], completions=completions, id=ids) == [1.0, 0.0, 1.0]
    # the id, not the position, decides which problem checks the answer
    swapped = reward(prompts=None, completions=completions[:1], id=[ids[2]])
    assert swapped == [float(problems[0].answer == problems[2].answer)]


class PoisonAfter(TrainerCallback):
    """Set one adapter weight to NaN after ``step`` steps, so the next loss is NaN."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                next(p for n, p in model.named_parameters() if "lora_A" in n).fill_(float("nan"))


@pytest.mark.slow
def test_nan_loss_stops_with_one_line_error_and_keeps_checkpoints(make_cfg, sft_pool):
    from selectgym.finetune.train import train

    cfg = make_cfg(method="sft", max_steps=4, save_steps=2)
    with pytest.raises(SelectgymError) as err:
        train(cfg, sft_pool, callbacks=[PoisonAfter(2)])
    message = str(err.value)
    assert "\n" not in message and "loss became nan at step 3" in message and "--lr" in message
    run = Path(cfg.output_dir)
    assert (run / "checkpoint-2" / "adapter_model.safetensors").exists()
    assert not (run / "adapter").exists()


@pytest.mark.slow
def test_merge_and_export_matches_the_peft_model(make_cfg, sft_pool, tmp_path):
    from transformers import AutoModelForCausalLM

    from selectgym.finetune.train import merge_and_export, train

    result = train(make_cfg(method="sft", max_steps=1), sft_pool)
    out = merge_and_export(result.adapter_dir, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    ids = result.tokenizer("Calculate 2 + 2.", return_tensors="pt")["input_ids"]
    peft_model = result.model.eval()
    with torch.no_grad():
        expected, got = peft_model(input_ids=ids).logits, merged(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    with peft_model.disable_adapter(), torch.no_grad():
        base = peft_model(input_ids=ids).logits
    assert not torch.allclose(base, expected, atol=1e-4)  # the adapter mattered, so the match is not trivial


def test_merge_and_export_needs_the_sidecar(tmp_path):
    from selectgym.finetune.train import merge_and_export

    with pytest.raises(SelectgymError, match="selectgym_finetune.json"):
        merge_and_export(tmp_path, tmp_path / "out")
