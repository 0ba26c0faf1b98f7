import pytest
import torch

from selectgym.errors import SelectgymError
from selectgym.proxies.lora import LoraSpec, attach_lora
from selectgym.proxies.models import TinyConfig, load_model, tiny_model, weights_digest


def test_tiny_model_is_seeded_and_leaves_global_rng(tokenizer):
    state = torch.random.get_rng_state()
    a = tiny_model(tokenizer, TinyConfig(seed=3))
    assert torch.equal(torch.random.get_rng_state(), state)
    b = tiny_model(tokenizer, TinyConfig(seed=3))
    c = tiny_model(tokenizer, TinyConfig(seed=4))
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    assert a.config.vocab_size == len(tokenizer)


def test_lora_attach_freezes_base(tokenizer):
    model = attach_lora(tiny_model(tokenizer), LoraSpec(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == {"q_proj", "v_proj"}
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any("embed_tokens" in n for n in frozen)


def test_lora_unknown_module_is_clear(tokenizer):
    with pytest.raises(SelectgymError, match=r"LoRA target modules \['c_attn'\] are not in this model"):
        attach_lora(tiny_model(tokenizer), LoraSpec(target_modules=["c_attn"]))


def test_missing_model_path_never_downloads():
    with pytest.raises(SelectgymError, match="never downloads"):
        load_model("HuggingFaceTB/SmolLM2-135M")


def test_local_hf_folder_round_trip(tmp_path, tokenizer):
    model = tiny_model(tokenizer, TinyConfig(seed=5))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, tok = load_model(str(tmp_path))
    ids = torch.tensor([[1, 2, 3]])
    assert torch.allclose(model(ids).logits, loaded(ids).logits)
    assert tok.pad_token_id is not None


def test_weights_digest_tells_two_builds_of_one_folder_apart(tmp_path, tokenizer):
    assert weights_digest("tiny") is None  # built from its config: the same weights everywhere
    tiny_model(tokenizer, TinyConfig(seed=5)).save_pretrained(tmp_path)
    first = weights_digest(str(tmp_path))
    assert first == weights_digest(str(tmp_path)) and len(first) == 16
    tiny_model(tokenizer, TinyConfig(seed=6)).save_pretrained(tmp_path)  # same name and size, other weights
    assert weights_digest(str(tmp_path)) != first
    tiny_model(tokenizer, TinyConfig(seed=5)).save_pretrained(tmp_path)  # the first weights again
    assert weights_digest(str(tmp_path)) == first
    with pytest.raises(SelectgymError, match="never downloads"):
        weights_digest("HuggingFaceTB/SmolLM2-135M")


@pytest.mark.slow
def test_smollm2_from_package_generates_and_takes_lora():
    model, tok = load_model("smollm2")
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text
    # the cached copy holds plain weights: no GGUF quantization left for the Trainer to refuse
    assert not getattr(model, "is_quantized", False) and getattr(model, "hf_quantizer", None) is None
    assert "quantization_config" not in model.config.to_dict()
    peft_model = attach_lora(model, LoraSpec(r=4))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    assert 0 < trainable < 0.05 * total
