"""The mini proxy: a miniature build in seconds. No test here reads the cached full build."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from selectgym.errors import SelectgymError
from selectgym.proxies import mini
from selectgym.proxies.mini import MiniConfig, corpus, encode, pretrain, prompt_of, train_tokenizer

SMALL = {"steps": 40, "batch_size": 16, "lr": 1e-2, "warmup": 4, "vocab_size": 320, "hidden_size": 32,
         "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "max_length": 96}


def small(**kw) -> MiniConfig:
    return MiniConfig(**{**SMALL, **kw})


@pytest.fixture(scope="module")
def built():
    return pretrain(small(seed=0))


def held_out_loss(model, tokenizer, seed: int) -> float:
    """Token-mean reply NLL on corpus examples drawn with another seed than training's."""
    data = encode(tokenizer, corpus(small(seed=seed), 64), 96)
    total, count = 0.0, 0
    with torch.no_grad():
        for ids, plen in data:
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]
            nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")
            total += float(nll[plen - 1:].sum())
            count += len(ids) - plen
    return total / count


def test_pretraining_lowers_the_reply_loss(built):
    model, tokenizer, report = built
    curve = [c["reply_loss"] for c in report["curve"]]
    assert np.mean(curve[-3:]) < 0.7 * np.mean(curve[:3])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = type(model)(model.config).eval()
    assert held_out_loss(model, tokenizer, seed=7) < 0.7 * held_out_loss(untrained, tokenizer, seed=7)


def test_build_is_deterministic_for_a_seed_and_leaves_global_state(built):
    rng, threads = torch.random.get_rng_state(), torch.get_num_threads()
    again, tok_again, report = pretrain(small(seed=0))
    assert torch.equal(torch.random.get_rng_state(), rng) and torch.get_num_threads() == threads
    model, tokenizer, first = built
    assert tokenizer.get_vocab() == tok_again.get_vocab()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                                   strict=True))
    assert report["curve"] == first["curve"]
    other, _, _ = pretrain(small(seed=1))
    assert not torch.equal(model.model.embed_tokens.weight, other.model.embed_tokens.weight)


def test_tokenizer_spells_digits_and_renders_like_the_suite(built):
    from selectgym.data.render import prompt_text, render

    _, tokenizer, _ = built
    assert tokenizer.tokenize("1234") == ["1", "2", "3", "4"]
    question = "State the final answer to the following arithmetic problem: 68 - 15 ="
    assert prompt_text(tokenizer, [{"role": "user", "content": question}]) == prompt_of(question)
    rendered = render(tokenizer, [{"role": "user", "content": question}], "53")
    assert rendered.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(rendered.input_ids[rendered.prompt_len:], skip_special_tokens=True) == "53"


def test_corpus_has_the_target_families_and_is_seeded():
    a, b, c = corpus(small(seed=0), 400), corpus(small(seed=0), 400), corpus(small(seed=1), 400)
    assert a == b and a != c and len(a) == 400
    questions = " ".join(q for q, _ in a)
    assert "Calculate" in questions and "State the final answer to the following arithmetic problem" in questions


def test_tokenizer_training_keeps_special_tokens():
    tok = train_tokenizer([prompt_of("Calculate 2 + 3.") + "5" + mini.EOS] * 20, 300)
    assert tok.eos_token == mini.EOS and tok.pad_token_id != tok.eos_token_id
    assert tok.convert_tokens_to_ids(mini.IM_START) != tok.unk_token_id


def test_load_model_finds_mini_by_name_and_builds_it_once(tmp_path, monkeypatch):
    from selectgym.proxies.models import load_model
    from selectgym.proxies.proxy import vllm_model_path

    monkeypatch.setenv("SELECTGYM_CACHE", str(tmp_path))
    monkeypatch.setattr(mini, "MiniConfig", functools.partial(MiniConfig, **{**SMALL, "steps": 5}))
    model, tok = load_model("mini")
    built_dirs = list((tmp_path / "models").glob("mini-*"))
    assert len(built_dirs) == 1 and (built_dirs[0] / "build.json").exists()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached build should have been loaded")

    monkeypatch.setattr(mini, "pretrain", no_rebuild)
    again, tok_again = load_model("mini")
    assert torch.equal(model.model.embed_tokens.weight, again.model.embed_tokens.weight)
    assert tok_again.pad_token_id == tok.pad_token_id and model.config.vocab_size == len(tok)
    assert vllm_model_path("mini") == built_dirs[0]


def test_pretrain_command_writes_a_loadable_folder(tmp_path, capsys):
    from selectgym.cli import main
    from selectgym.proxies.models import load_model

    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**SMALL, "steps": 5}.items()]
    assert main(["model", "pretrain", "--out", str(tmp_path / "m"), "--no-progress", *flags]) == 0
    assert "reply loss" in capsys.readouterr().out
    model, tok = load_model(str(tmp_path / "m"))
    assert model.config.hidden_size == SMALL["hidden_size"] and tok.eos_token == mini.EOS


def test_pretrain_help_lists_the_config_flags(capsys):
    from selectgym.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["model", "pretrain", "--help"])
    assert exit_info.value.code == 0
    assert "--hidden-size" in capsys.readouterr().out


def test_bad_config_is_one_clear_error():
    with pytest.raises(SelectgymError, match="multiple of num_attention_heads"):
        MiniConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(SelectgymError, match="steps must be >= 1"):
        MiniConfig(steps=0)
