"""Generation backends: seeded transformers sampling, and the OpenAI client against a real local HTTP server."""

from __future__ import annotations

import importlib.util
import logging

import pytest
import torch

from selectgym.errors import SelectgymError
from selectgym.proxies.models import TinyConfig, tiny_model
from selectgym.proxies.rollouts import (
    OpenAIGenerator,
    TransformersGenerator,
    VLLMGenerator,
    make_generator,
    prompt_seed,
)
from tests.proxies.http_fakes import FakeChatServer, closed_port_url

PROMPTS = [[{"role": "user", "content": "What is 2 + 2?"}],
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour, please, any."}]]
SECRET = "sk-test-do-not-log-4f1c"


@pytest.fixture(scope="module")
def generator(tokenizer):
    return TransformersGenerator(tiny_model(tokenizer, TinyConfig(seed=0)), tokenizer, batch_size=4)


def test_transformers_n_per_prompt_seeded_and_global_rng_untouched(generator):
    cpu_state = torch.random.get_rng_state()
    first = generator.generate(PROMPTS, n=3, max_new_tokens=6, seed=1)
    assert torch.equal(torch.random.get_rng_state(), cpu_state)
    assert [len(c) for c in first] == [3, 3] and all(isinstance(s, str) for c in first for s in c)
    assert generator.generate(PROMPTS, n=3, max_new_tokens=6, seed=1) == first
    assert generator.generate(PROMPTS, n=3, max_new_tokens=6, seed=2) != first
    assert len(set(first[0])) > 1  # sampling: the three completions of one prompt differ


def test_transformers_greedy_ignores_left_padding(generator, tokenizer):
    """A prompt decoded greedily alone equals the same prompt left-padded next to a much longer one."""
    long_prompt = [{"role": "user", "content": "word " * 40}]
    alone = generator.generate(PROMPTS[:1], n=2, max_new_tokens=6, temperature=0)
    batched = generator.generate([PROMPTS[0], long_prompt], n=2, max_new_tokens=6, temperature=0)
    assert alone[0] == batched[0]
    assert alone[0][0] == alone[0][1]


def test_transformers_generator_restores_training_mode(generator):
    generator.model.train()
    try:
        generator.generate(PROMPTS[:1], max_new_tokens=2)
        assert generator.model.training
    finally:
        generator.model.eval()


@pytest.mark.parametrize("bad", [[[]], [[{"role": "user", "content": "  "}]], ["a plain string"]])
def test_empty_or_malformed_prompts_rejected(generator, bad):
    with pytest.raises(SelectgymError, match="prompt 0"):
        generator.generate(bad)


def test_make_generator_auto_falls_back_to_transformers(generator, tokenizer, caplog):
    with caplog.at_level(logging.INFO, logger="selectgym.proxies.rollouts"):
        gen = make_generator("auto", model=generator.model, tokenizer=tokenizer, batch_size=2)
    assert isinstance(gen, TransformersGenerator) and gen.batch_size == 2
    assert "generation backend: transformers" in caplog.text
    with pytest.raises(SelectgymError, match="base_url"):
        make_generator("openai")
    with pytest.raises(SelectgymError, match="unknown generation backend 'tgi'; choose from auto, transformers"):
        make_generator("tgi")
    with pytest.raises(SelectgymError, match="needs a model"):
        make_generator("transformers")
    with pytest.raises(SelectgymError, match="vllm"):
        make_generator("vllm")


def test_openai_success_sends_key_in_header_only(monkeypatch, caplog):
    monkeypatch.setenv("SELECTGYM_TEST_KEY", SECRET)
    with FakeChatServer(reply=lambda body: f"echo {body['messages'][-1]['content']}") as server, \
            caplog.at_level(logging.DEBUG):
        gen = OpenAIGenerator(server.base_url, "tiny-chat", api_key_env="SELECTGYM_TEST_KEY", backoff=0)
        out = gen.generate(PROMPTS, n=2, max_new_tokens=5, temperature=0.7, seed=3)
    assert out == [["echo What is 2 + 2?"] * 2, ["echo Name a colour, please, any."] * 2]
    assert len(server.requests) == 2
    req = server.requests[1]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert req["body"] == {"model": "tiny-chat", "messages": PROMPTS[1], "n": 2, "max_tokens": 5,
                           "temperature": 0.7, "top_p": 1.0, "seed": prompt_seed(3, 1, 0)}
    assert server.requests[0]["body"]["seed"] == prompt_seed(3, 0, 0) != prompt_seed(3, 1, 0)
    assert SECRET not in caplog.text


def test_openai_tops_up_when_server_ignores_n():
    with FakeChatServer(reply="x", max_choices=1) as server:
        out = OpenAIGenerator(server.base_url, "m", backoff=0).generate(PROMPTS[:1], n=3)
    assert out == [["x", "x", "x"]]
    assert [r["body"]["n"] for r in server.requests] == [3, 2, 1]


@pytest.mark.parametrize("mode, why", [("error", "HTTP 500"), ("garbage", "not a chat-completions reply")])
def test_openai_bad_server_retries_then_one_line_error(monkeypatch, caplog, mode, why):
    monkeypatch.setenv("SELECTGYM_TEST_KEY", SECRET)
    with FakeChatServer(mode=mode) as server, caplog.at_level(logging.DEBUG):
        gen = OpenAIGenerator(server.base_url, "m", api_key_env="SELECTGYM_TEST_KEY", max_retries=2, backoff=0)
        with pytest.raises(SelectgymError) as err:
            gen.generate(PROMPTS[:1])
    assert len(server.requests) == 3  # max_retries + 1
    message = str(err.value)
    assert why in message and "failed 3 times" in message and "\n" not in message and SECRET not in message
    assert SECRET not in caplog.text


def test_openai_server_down_bounded_retries(caplog):
    with caplog.at_level(logging.WARNING, logger="selectgym.proxies.rollouts"):
        gen = OpenAIGenerator(closed_port_url(), "m", max_retries=1, timeout=2, backoff=0)
        with pytest.raises(SelectgymError) as err:
            gen.generate(PROMPTS[:1])
    assert "failed 2 times" in str(err.value) and "\n" not in str(err.value)
    assert caplog.text.count("chat request to") == 2


def test_openai_rejects_bad_base_url():
    with pytest.raises(SelectgymError, match="http"):
        OpenAIGenerator("localhost:8000", "m")


def test_make_generator_auto_loads_model_path_and_adapter_without_vllm(generator, tokenizer, tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("auto picks vllm where it is installed (covered by test_vllm.py)")
    from selectgym.proxies.lora import LoraSpec, attach_lora, lora_parameters

    base = tiny_model(tokenizer, TinyConfig(seed=3))
    base.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    adapted = attach_lora(base, LoraSpec(r=4, target_modules=["q_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, p in lora_parameters(adapted):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    adapted.save_pretrained(tmp_path / "adapter")
    expected = TransformersGenerator(adapted, tokenizer).generate(PROMPTS, max_new_tokens=5, temperature=0)

    loaded = make_generator("auto", model_path=tmp_path / "model", lora_path=tmp_path / "adapter")
    assert isinstance(loaded, TransformersGenerator) and hasattr(loaded.model, "disable_adapter")
    assert loaded.generate(PROMPTS, max_new_tokens=5, temperature=0) == expected


def test_vllm_generator_without_vllm_is_a_one_line_error(tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(SelectgymError, match="install_vllm.sh"):
        VLLMGenerator(tmp_path)
