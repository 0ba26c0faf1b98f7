import torch

from selectgym.data.pool import Example
from selectgym.data.render import collate, prompt_text, render


def test_masks_cover_exactly_the_response(tokenizer):
    prompt = [{"role": "user", "content": "What is 2+3?"}]
    r = render(tokenizer, prompt, "5")
    n_prompt = len(tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"])
    assert r.prompt_len == n_prompt
    assert r.input_ids[n_prompt:] == tokenizer("5", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert sum(r.response_mask) == len(r.input_ids) - n_prompt


def test_long_prompt_cut_from_left(tokenizer):
    r = render(tokenizer, [{"role": "user", "content": "word " * 400}], "ok", max_length=32)
    assert len(r.input_ids) == 32 and r.response_mask[-1] == 1 and sum(r.response_mask) >= 2


def test_collate_pads_right(tokenizer):
    ex = Example("a", [{"role": "user", "content": "hi"}], response="hello there")
    a = render(tokenizer, ex.prompt, "x")
    b = render(tokenizer, ex.prompt, ex.response)
    batch = collate([a, b], tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (2, len(b.input_ids))
    assert batch["attention_mask"][0].sum() == len(a.input_ids)
    assert torch.equal(batch["response_mask"][1], torch.tensor(b.response_mask))


def test_a_cut_response_is_announced(tokenizer, caplog, monkeypatch):
    import logging

    from selectgym.data import render as rendering
    from selectgym.data.render import render_example

    monkeypatch.setattr(rendering, "_CUT_WARNINGS", [0])  # earlier tests may have used up the announced cuts
    long = Example("big", [{"role": "user", "content": "Write a lot."}], response="word " * 20_000)
    short = Example("small", [{"role": "user", "content": "Say hi."}], response="hi")
    with caplog.at_level(logging.WARNING, logger="selectgym.data.render"):
        assert len(render_example(tokenizer, short, max_length=64).input_ids) < 64
        assert not caplog.records
        assert len(render_example(tokenizer, long, max_length=64).input_ids) == 64
    assert "example 'big': its target (100000 characters) is cut to fit max_length 64" in caplog.text
