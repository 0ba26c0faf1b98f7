"""evaluate(): verifier accuracy of greedy answers and the validation loss, on hand-made cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from selectgym.data.pool import Example, Pool
from selectgym.errors import SelectgymError


@pytest.fixture(scope="module")
def tiny():
    from selectgym.proxies.models import load_model

    model, tok = load_model("tiny")
    return model.eval(), tok


def exact_match_pool(answers: list[str], prompts: list[str], responses: list[str]) -> Pool:
    """Examples without a reasoning-gym task, so the verifier is exact match on ``answer``."""
    return Pool(tuple(Example(f"e{i}", [{"role": "user", "content": p}], response=r, answer=a)
                      for i, (a, p, r) in enumerate(zip(answers, prompts, responses, strict=True))), "verifiable")


def test_accuracy_counts_exact_greedy_answers(tiny, monkeypatch):
    from selectgym.finetune import evaluate as evaluation

    model, tok = tiny
    prompts = ["Calculate 1 + 1.", "Spell cat backward.", "What is 3 * 3?", "Name a colour."]
    probe = exact_match_pool(["?"] * 4, prompts, ["x"] * 4)
    # batching does not change greedy answers
    said = evaluation.greedy_completions(model, tok, probe, max_new_tokens=4, batch_size=3)
    assert said == evaluation.greedy_completions(model, tok, probe, max_new_tokens=4, batch_size=1)
    # the first three are right (an 'answer is' preamble and a final dot are dropped), the last one is not
    monkeypatch.setattr(evaluation, "greedy_completions",
                        lambda *a, **k: ["2", "The answer is tac.", "\n9\nbecause", "red"])
    pool = exact_match_pool(["2", "tac", "9", "blue"], prompts, ["x"] * 4)
    metrics = evaluation.evaluate(model, tok, pool, max_new_tokens=4, batch_size=3)
    assert metrics["accuracy"] == pytest.approx(0.75) and metrics["n"] == 4


def test_val_loss_is_the_mean_of_per_example_response_token_nll(tiny):
    from selectgym.data.render import render
    from selectgym.finetune.evaluate import validation_loss

    model, tok = tiny
    pool = exact_match_pool(["4", "tac"], ["Calculate 2 + 2.", "Spell cat backward, please, letter by letter."],
                            ["4", "t a c"])
    by_hand = []
    for ex in pool:
        item = render(tok, ex.prompt, ex.response, 512)
        ids = torch.tensor([item.input_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        nll = F.cross_entropy(logits, ids[0, 1:], reduction="none")
        mask = torch.tensor(item.response_mask[1:], dtype=torch.bool)
        by_hand.append(float(nll[mask].mean()))
    got = validation_loss(model, tok, pool, batch_size=2)
    assert got == pytest.approx(sum(by_hand) / 2, rel=1e-5)
    assert by_hand[0] != pytest.approx(by_hand[1])  # per-example means, not one pooled token mean


def test_evaluate_on_the_suite_uses_reasoning_gym_verifiers(tiny, suite_dir):
    from selectgym.data import load_pool
    from selectgym.finetune.evaluate import evaluate

    model, tok = tiny
    val = load_pool(suite_dir / "validation.jsonl")[:3]
    metrics = evaluate(model, tok, val, max_new_tokens=2)
    assert set(metrics) == {"accuracy", "val_loss", "n"} and metrics["n"] == 3
    assert metrics["accuracy"] == 0.0  # a random-weight model answers no arithmetic
    assert metrics["val_loss"] > 5  # and it is near-uniform over 49k tokens (log 49152 = 10.8)


def test_evaluate_rejects_an_empty_set(tiny):
    from selectgym.finetune.evaluate import evaluate

    model, tok = tiny
    with pytest.raises(SelectgymError, match="empty"):
        evaluate(model, tok, Pool((), "verifiable"))


def test_evaluate_refuses_a_set_with_nothing_to_check(tiny, tmp_path):
    """An Alpaca pool has responses, not answers: a blank greedy answer must not score 1.0 against nothing."""
    from selectgym.data.io import load_pool
    from selectgym.data.verify import score
    from selectgym.finetune.evaluate import evaluate

    model, tok = tiny
    path = tmp_path / "alpaca.jsonl"
    path.write_text('{"instruction": "Say hi", "output": "hi"}\n{"instruction": "Say yo", "output": "yo"}\n')
    pool = load_pool(path)
    with pytest.raises(SelectgymError, match="2 of 2 evaluation examples have no reference answer"):
        evaluate(model, tok, pool)
    assert score(pool[0], "") == 0.0
