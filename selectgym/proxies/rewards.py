"""Rewards for sampled completions: a rule verifier, a local reward model, or an LLM judge over HTTP.

NICE and GradAlign only need a number per (example, completion); which one is a choice of the user.
"""

from __future__ import annotations

import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selectgym.data.pool import Example
from selectgym.data.render import FALLBACK_TEMPLATE
from selectgym.errors import SelectgymError
from selectgym.proxies.rollouts import ChatClient
from selectgym.registry import Registry

log = logging.getLogger(__name__)


class CompletionReward(ABC):
    """Score completions of examples; one float per (example, completion) pair."""

    def __call__(self, examples: Sequence[Example], completions: Sequence[str]) -> np.ndarray:
        examples, completions = list(examples), list(completions)
        if len(examples) != len(completions):
            raise SelectgymError(f"got {len(examples)} examples but {len(completions)} completions; pass one each")
        if not examples:
            return np.zeros(0, dtype=np.float32)
        scores = np.asarray(self._score(examples, completions), dtype=np.float32)
        if scores.shape != (len(examples),) or not np.isfinite(scores).all():
            raise SelectgymError(f"{type(self).__name__} gave {scores.shape} scores (non-finite ones included?) "
                                 f"for {len(examples)} completions")
        return scores

    @abstractmethod
    def _score(self, examples: list[Example], completions: list[str]) -> Sequence[float]: ...


class VerifierReward(CompletionReward):
    """reasoning-gym's verifier for the example's task (exact match on ``answer`` otherwise), in [0, 1]."""

    def _score(self, examples, completions):
        from selectgym.data.verify import score

        return [score(ex, c) for ex, c in zip(examples, completions, strict=True)]


class RewardModelReward(CompletionReward):
    """A local sequence-classification reward model (one logit) scoring the whole chat, prompt + completion.

    The conversation is rendered with the reward model's own chat template; batches are padded the way
    HF's sequence classifiers expect (they read the logit at the last non-pad token).
    """

    def __init__(self, model_path: str | Path, batch_size: int = 8, max_length: int = 1024) -> None:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        if not Path(model_path).is_dir():
            raise SelectgymError(f"reward model {model_path} is not a local folder; selectgym never downloads")
        if batch_size < 1:
            raise SelectgymError(f"batch_size must be >= 1, got {batch_size}")
        labels = AutoConfig.from_pretrained(str(model_path)).num_labels
        if labels != 1:
            raise SelectgymError(f"{model_path} has {labels} labels; a reward model has one (a scalar score)")
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(str(model_path)).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size, self.max_length = int(batch_size), int(max_length)

    def _text(self, example: Example, completion: str) -> str:
        messages = [*example.prompt, {"role": "assistant", "content": completion}]
        template = self.tokenizer.chat_template or FALLBACK_TEMPLATE
        return self.tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template)

    def _score(self, examples, completions):
        texts = [self._text(ex, c) for ex, c in zip(examples, completions, strict=True)]
        device = next(self.model.parameters()).device
        out: list[float] = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_length, add_special_tokens=False)
                logits = self.model(input_ids=enc["input_ids"].to(device),
                                    attention_mask=enc["attention_mask"].to(device)).logits
                out.extend(logits[:, 0].float().cpu().tolist())
        return out


JUDGE_SYSTEM = "You are a strict grader. You reply with a single number and nothing else."
JUDGE_TEMPLATE = (
    "Rate how well the response answers the question, from 0 (useless or wrong) to {scale:g} (fully correct "
    "and helpful).\n\nQuestion:\n{question}\n{reference}\nResponse:\n{response}\n\nScore (0-{scale:g}):"
)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


class LLMJudgeReward(CompletionReward):
    """An LLM judge behind an OpenAI-compatible API grades each completion 0..``scale``; reward = score/scale.

    A reply without a number in range is an error by default (a silently zero reward would bias the
    gradients); ``on_unparsed="zero"`` turns it into reward 0 with a warning instead.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", scale: float = 10.0,
                 timeout: float = 30, max_retries: int = 2, backoff: float = 0.5, on_unparsed: str = "error") -> None:
        if scale <= 0:
            raise SelectgymError(f"judge scale must be > 0, got {scale}")
        if on_unparsed not in ("error", "zero"):
            raise SelectgymError(f"on_unparsed must be 'error' or 'zero', got {on_unparsed!r}")
        self.client = ChatClient(base_url, model, api_key_env, timeout, max_retries, backoff)
        self.scale, self.on_unparsed = float(scale), on_unparsed

    def _messages(self, example: Example, completion: str) -> list[dict[str, str]]:
        question = "\n".join(f"{m['role']}: {m['content']}" for m in example.prompt)
        reference = f"\nReference answer:\n{example.answer}\n" if example.answer else ""
        user = JUDGE_TEMPLATE.format(scale=self.scale, question=question, reference=reference, response=completion)
        return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]

    def parse(self, reply: str) -> float | None:
        """The first number in the reply as a share of ``scale``; None when there is none or it is out of range."""
        match = _NUMBER.search(reply or "")
        if match is None:
            return None
        value = float(match.group())
        return value / self.scale if math.isfinite(value) and 0 <= value <= self.scale else None

    def _score(self, examples, completions):
        out = []
        for ex, completion in zip(examples, completions, strict=True):
            replies = self.client.complete(self._messages(ex, completion), temperature=0.0, max_tokens=8)
            value = self.parse(replies[0]) if replies else None
            if value is None:
                shown = " ".join(self.client.redact(replies[0] if replies else "<no choices>").split())[:80]
                if self.on_unparsed == "error":
                    raise SelectgymError(f"the judge at {self.client.shown_url} replied {shown!r} for example {ex.id}, "
                                         f"not a score in 0..{self.scale:g}; use a model that follows the grading "
                                         "prompt, or on_unparsed='zero'")
                log.warning("judge reply %r for example %s has no score in range; reward 0", shown, ex.id)
                value = 0.0
            out.append(value)
        return out


#: completion reward name -> class; a dotted path ``pkg.mod:Class`` names your own ``CompletionReward``.
COMPLETION_REWARDS = Registry("completion reward", {"verifier": VerifierReward, "reward_model": RewardModelReward,
                                                    "judge": LLMJudgeReward}, base=CompletionReward)
KINDS = tuple(COMPLETION_REWARDS)


def make_reward(kind: str, **kw: Any) -> CompletionReward:
    """``verifier`` | ``reward_model`` (``model_path=``) | ``judge`` (``base_url=``, ``model=``), or a dotted path."""
    return COMPLETION_REWARDS.create(kind, **kw)
