"""Rewards: the verifier on suite problems, a real (tiny) reward model from disk, and a judge over local HTTP."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from selectgym.data import load_pool
from selectgym.data.pool import Example
from selectgym.errors import SelectgymError
from selectgym.proxies.rewards import LLMJudgeReward, RewardModelReward, VerifierReward, make_reward
from tests.proxies.http_fakes import FakeChatServer


@pytest.fixture(scope="module")
def validation(suite_dir):
    return list(load_pool(suite_dir / "validation.jsonl"))[:3]


def test_verifier_scores_reference_answers_one_and_nonsense_zero(validation):
    reward = make_reward("verifier")
    assert isinstance(reward, VerifierReward)
    answers = [ex.answer for ex in validation]
    got = reward(validation * 2, [*answers, "no idea", "", f"The answer is {answers[2]}."])
    np.testing.assert_array_equal(got, [1, 1, 1, 0, 0, 1])
    assert got.dtype == np.float32


def test_reward_needs_one_completion_per_example(validation):
    with pytest.raises(SelectgymError, match="one each"):
        VerifierReward()(validation, ["1"])


def test_reward_model_scores_the_templated_chat_and_ignores_padding(reward_model_dir, validation, tokenizer):
    completions = ["42", "a much longer completion that needs padding in a batch with the others " * 3, "7"]
    batched = RewardModelReward(reward_model_dir, batch_size=3)(validation, completions)
    single = RewardModelReward(reward_model_dir, batch_size=1)
    alone = single(validation, completions)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    # Hand check of one score: the logit at the last token of the chat rendered with the template.
    text = tokenizer.apply_chat_template([*validation[0].prompt, {"role": "assistant", "content": "42"}],
                                         tokenize=False)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        expected = single.model(input_ids=ids).logits[0, 0].item()
    assert alone[0] == pytest.approx(expected, abs=1e-5)
    assert len(set(np.round(alone, 6))) == 3  # the completion changes the score


def test_reward_model_rejects_missing_folder_and_multi_label_heads(tmp_path, reward_model_dir):
    with pytest.raises(SelectgymError, match="not a local folder"):
        make_reward("reward_model", model_path=tmp_path / "absent")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(reward_model_dir)
    config.num_labels = 2
    config.save_pretrained(tmp_path / "two_labels")
    with pytest.raises(SelectgymError, match="2 labels"):
        RewardModelReward(tmp_path / "two_labels")


def test_judge_asks_for_a_score_and_divides_by_scale(validation):
    with FakeChatServer(reply="7") as server:
        reward = make_reward("judge", base_url=server.base_url, model="judge-1", backoff=0)
        got = reward(validation[:2], ["121", "wrong"])
    np.testing.assert_allclose(got, [0.7, 0.7])
    body = server.requests[1]["body"]
    assert body["model"] == "judge-1" and body["temperature"] == 0.0
    prompt = body["messages"][-1]["content"]
    assert "wrong" in prompt and validation[1].prompt[0]["content"] in prompt and validation[1].answer in prompt


@pytest.mark.parametrize("reply, expected", [("8", 0.8), ("Score: 2.5", 0.25), ("10/10", 1.0), ("0", 0.0),
                                             ("eleven", None), ("15", None), ("", None)])
def test_judge_parse(reply, expected):
    judge = LLMJudgeReward("http://127.0.0.1:9/v1", "m", scale=10)
    assert judge.parse(reply) == expected


def test_judge_garbage_reply_is_an_error_or_zero_with_warning(validation, caplog):
    with FakeChatServer(reply="I would rather not say") as server:
        with pytest.raises(SelectgymError, match="not a score in 0..10") as err:
            LLMJudgeReward(server.base_url, "m", backoff=0)(validation[:1], ["x"])
        assert "\n" not in str(err.value)
        with caplog.at_level(logging.WARNING, logger="selectgym.proxies.rewards"):
            got = LLMJudgeReward(server.base_url, "m", backoff=0, on_unparsed="zero")(validation[:1], ["x"])
    np.testing.assert_array_equal(got, [0.0])
    assert "no score in range" in caplog.text


def test_judge_server_down_is_a_one_line_error(validation):
    with FakeChatServer(mode="error") as server:
        with pytest.raises(SelectgymError, match="failed 2 times"):
            LLMJudgeReward(server.base_url, "m", max_retries=1, backoff=0)(validation[:1], ["x"])
    assert len(server.requests) == 2


def test_make_reward_checks_kind_and_options():
    with pytest.raises(SelectgymError, match="unknown completion reward 'bleu'; choose from verifier, reward_model"):
        make_reward("bleu")
    with pytest.raises(SelectgymError, match="bad options"):
        make_reward("judge", base_url="http://x")
    example = Example(id="e", prompt=[{"role": "user", "content": "2+2?"}], answer="4")
    assert make_reward("verifier")([example], ["4"])[0] == 1.0
