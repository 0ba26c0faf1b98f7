"""FinetuneConfig: cross-field checks fail early with one-line messages that say what to change."""

from __future__ import annotations

import dataclasses

import pytest

from selectgym.errors import SelectgymError
from selectgym.finetune.config import FinetuneConfig


def test_every_field_has_help():
    assert all(f.metadata.get("help") for f in dataclasses.fields(FinetuneConfig))


@pytest.mark.parametrize(("options", "needle"), [
    ({"method": "ppo"}, "method must be one of sft, dpo, grpo"),
    ({"method": "grpo", "batch_size": 6, "num_generations": 4}, "batch_size in [4, 8, 12, 16]"),
    ({"method": "grpo", "num_generations": 1}, "num_generations >= 2"),
    ({"method": "grpo", "completion_reward": "/no/such/reward-model"}, "never downloads"),
    ({"method": "dpo", "reselect": "less"}, "reselect (for method dpo) must be one of none, random"),
    ({"bf16": True, "device": "cpu"}, "drop --bf16"),
    ({"max_steps": 0}, "-1 to let epochs decide"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"reselect": "less", "max_steps": 5, "warmup_step": 4, "update_step": 4, "update_times": 2}, "max_steps >= 12"),
    ({"reselect": "random", "budget": 2.5}, "whole count"),
])
def test_bad_combinations_are_one_line_errors(options, needle):
    with pytest.raises(SelectgymError) as err:
        FinetuneConfig(**options)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_reselection_sets_the_dataflex_step_count():
    cfg = FinetuneConfig(reselect="random", warmup_step=10, update_step=5, update_times=3)
    assert cfg.max_steps == 10 + 5 * 3


def test_bf16_is_off_on_cpu_by_default():
    assert FinetuneConfig(device="cpu").use_bf16 is False


def test_vllm_only_when_importable():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(SelectgymError, match="vllm is not importable"):
        FinetuneConfig(method="grpo", use_vllm=True)
