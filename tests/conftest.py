"""Shared fixtures: a small built-in suite and the tiny proxy, built once per session."""

from __future__ import annotations

import os

import pytest
import torch


def pytest_runtest_setup(item):
    if "cuda" in item.keywords and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


@pytest.fixture(scope="session")
def suite_dir(tmp_path_factory):
    from selectgym.data.suite import SuiteConfig, make_suite

    out = tmp_path_factory.mktemp("suite")
    make_suite(out, SuiteConfig(seed=0, size=120, validation_size=16))
    return out


@pytest.fixture(scope="session")
def tokenizer():
    from selectgym.proxies.models import load_tokenizer

    return load_tokenizer("tiny")


def build_tiny_lora(tokenizer):
    """A tiny Llama with LoRA on all linear layers, every LoRA weight drawn non-zero (seeded) so gradients
    reach both A and B."""
    from selectgym.proxies.lora import attach_lora, lora_parameters
    from selectgym.proxies.models import TinyConfig, tiny_model

    model = attach_lora(tiny_model(tokenizer, TinyConfig(seed=0)))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, p in lora_parameters(model):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


@pytest.fixture()
def tiny_lora(tokenizer):
    """A fresh ``build_tiny_lora`` model for each test."""
    return build_tiny_lora(tokenizer)


@pytest.fixture(scope="session")
def reward_model_dir(tmp_path_factory, tokenizer):
    """A random one-logit sequence classifier on disk: rewards that differ between completions."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForSequenceClassification(config)
    out = tmp_path_factory.mktemp("reward-model")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
