"""Render examples with the model's chat template and keep which tokens are prompt and which response.

Prompt and response are tokenised separately and concatenated, so the boundary is exact whatever the
tokenizer merges; the SFT loss then covers response tokens only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from selectgym.data.pool import Example, Message

log = logging.getLogger(__name__)

FALLBACK_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class Rendered:
    """Token ids of a prompt + response, and a mask that is 1 on response tokens."""

    input_ids: list[int]
    response_mask: list[int]

    @property
    def prompt_len(self) -> int:
        return self.response_mask.index(1) if 1 in self.response_mask else len(self.response_mask)


def prompt_text(tokenizer, prompt: Sequence[Message]) -> str:
    """The prompt rendered with the tokenizer's chat template, ready for the assistant's reply."""
    template = tokenizer.chat_template or FALLBACK_TEMPLATE
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True,
                                         chat_template=template)


def render(tokenizer, prompt: Sequence[Message], response: str, max_length: int = 512) -> Rendered:
    """Render one prompt/response pair; the response ends with the end-of-sequence token.

    When too long, the prompt is cut from the left first (the response is what is scored), then the
    response from the right.
    """
    p_ids = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        r_ids = [*r_ids, tokenizer.eos_token_id]
    r_ids = r_ids[:max_length - 1]
    p_ids = p_ids[-(max_length - len(r_ids)):]
    return Rendered(p_ids + r_ids, [0] * len(p_ids) + [1] * len(r_ids))


def render_example(tokenizer, example: Example, max_length: int = 512, field: str = "target") -> Rendered:
    """Render an example's ``target`` (SFT text), ``chosen`` or ``rejected`` reply."""
    text = example.target if field == "target" else getattr(example, field)
    rendered = render(tokenizer, example.prompt, text, max_length)
    if rendered.response_mask[-1] == 1 and len(rendered.input_ids) == max_length and _response_cut(
            tokenizer, text, rendered):
        _warn_cut(example.id, field, len(text), max_length)
    return rendered


def _response_cut(tokenizer, text: str, rendered: Rendered) -> bool:
    """Whether the response lost tokens (not just the prompt) to ``max_length``."""
    kept = sum(rendered.response_mask)
    eos = 1 if tokenizer.eos_token_id is not None else 0
    return kept < len(tokenizer(text, add_special_tokens=False)["input_ids"]) + eos


_CUT_WARNINGS = [0]
#: truncations announced one by one before the rest go to debug logs
CUT_WARNING_LIMIT = 3


def _warn_cut(example_id: str, field: str, chars: int, max_length: int) -> None:
    _CUT_WARNINGS[0] += 1
    level = logging.WARNING if _CUT_WARNINGS[0] <= CUT_WARNING_LIMIT else logging.DEBUG
    log.log(level, "example %r: its %s (%d characters) is cut to fit max_length %d tokens; raise max_length to "
            "score all of it%s", example_id, field, chars, max_length,
            " (further cuts are logged at debug level)" if _CUT_WARNINGS[0] == CUT_WARNING_LIMIT else "")


def collate(items: Sequence[Rendered], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch: ``input_ids``, ``attention_mask`` and ``response_mask`` (B, T)."""
    width = max(len(it.input_ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(items), width), dtype=torch.long)
    resp = torch.zeros((len(items), width), dtype=torch.long)
    for i, it in enumerate(items):
        n = len(it.input_ids)
        ids[i, :n] = torch.tensor(it.input_ids)
        attn[i, :n] = 1
        resp[i, :n] = torch.tensor(it.response_mask)
    return {"input_ids": ids, "attention_mask": attn, "response_mask": resp}
