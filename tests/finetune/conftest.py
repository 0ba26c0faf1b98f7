"""Small pools and a config factory for fine-tuning tests (tiny model, few steps)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def sft_pool(suite_dir):
    from selectgym.data import load_pool

    return load_pool(suite_dir / "sft.jsonl")[:12]


@pytest.fixture(scope="session")
def val_pool(suite_dir):
    from selectgym.data import load_pool

    return load_pool(suite_dir / "validation.jsonl")[:4]


@pytest.fixture()
def make_cfg(tmp_path):
    """A FinetuneConfig for the tiny model with test-sized defaults (override any field)."""
    from selectgym.finetune.config import FinetuneConfig

    def make(**overrides):
        options = {"model": "tiny", "output_dir": str(tmp_path / "run"), "lr": 5e-3, "max_steps": 2,
                   "batch_size": 2, "max_length": 128, "seed": 0, "logging_steps": 1}
        options.update(overrides)
        return FinetuneConfig(**options)

    return make


def split_weights(model) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Copies of (base weights, LoRA weights) of a peft model, keyed by name."""
    base, lora = {}, {}
    for name, p in model.named_parameters():
        (lora if "lora_" in name else base)[name] = p.detach().clone()
    return base, lora
