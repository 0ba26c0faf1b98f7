"""Verifiers: reasoning-gym's own scorer for suite problems, exact match otherwise.

Which reference counts: the example's top-level ``answer`` is the reference answer. A reasoning-gym entry
(``meta.entry`` with ``meta.task``) lends its task's scorer, which accepts equivalent forms of an answer,
only while the entry's own ``answer`` agrees with the top-level one. When they disagree (the ``answer`` was
edited after the entry was made), the entry is stale: the completion is scored by exact match against the
top-level ``answer``, never against the entry's. Without a top-level ``answer`` the entry's scorer is used.
An example with neither a non-empty ``answer`` nor a usable entry cannot be scored: its reward is always 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from selectgym.data.pool import Example
from selectgym.errors import SelectgymError


def extract_answer(completion: str) -> str:
    """The answer a completion gives: its first non-empty line, without an 'answer is' preamble."""
    for line in completion.strip().splitlines():
        line = line.strip()
        if line:
            low = line.lower()
            for lead in ("the answer is", "answer:", "final answer:"):
                if low.startswith(lead):
                    line = line[len(lead):].strip()
            return line.rstrip(".").strip()
    return ""


@lru_cache(maxsize=64)
def _scorer(task: str):
    import reasoning_gym as rg

    return rg.get_score_answer_fn(task)


def edited_answer(example: Example) -> bool:
    """Whether the top-level ``answer`` disagrees with the reasoning-gym entry's (then exact match decides)."""
    entry = example.meta.get("entry")
    return (example.answer is not None and isinstance(entry, dict) and "answer" in entry
            and str(entry["answer"]).strip() != example.answer.strip())


def _entry_scorer(example: Example):
    """The task's reasoning-gym scorer, when the example has an entry that agrees with its answer."""
    entry, task = example.meta.get("entry"), example.meta.get("task")
    if not isinstance(entry, dict) or not task or edited_answer(example):
        return None
    try:
        return _scorer(str(task))
    except (KeyError, ValueError, LookupError):
        return None


def scorable(example: Example) -> bool:
    """Whether ``score`` can ever give this example a reward above 0 (it has a reference to check against)."""
    return bool((example.answer or "").strip()) or _entry_scorer(example) is not None


def score(example: Example, completion: str) -> float:
    """Reward in [0, 1] for a completion to a verifiable example (0 for an answer the task's scorer cannot parse).

    The reference is the top-level ``answer``; see the module docstring for when the entry's scorer is used.
    """
    answer = extract_answer(completion)
    fn = _entry_scorer(example)
    if fn is not None:
        try:
            return float(fn(answer, example.meta["entry"]) or 0.0)
        except Exception:  # noqa: BLE001 - some reasoning-gym scorers raise on unparsable answers: a wrong answer
            return 0.0
    reference = (example.answer or "").strip()
    return float(bool(reference) and answer == reference)  # no reference: nothing can match, not even silence


def _first(ids: list[str], n: int = 3) -> str:
    return ", ".join(ids[:n]) + (", ..." if len(ids) > n else "")


def verifier_report(examples: Iterable[Example], source: str = "the pool") -> list[str]:
    """Warning lines about examples the verifier cannot score or scores by exact match only; a one-line
    ``SelectgymError`` when it can score none of them (every reward would be 0: nothing to learn)."""
    examples = list(examples)
    blind = [ex.id for ex in examples if not scorable(ex)]
    if examples and len(blind) == len(examples):
        raise SelectgymError(f"{source}: the verifier can score none of its {len(examples)} examples (none has a "
                             f"non-empty 'answer', or meta.task + meta.entry from reasoning-gym), so every reward "
                             f"would be 0; pass a verifiable pool (prompt + answer, e.g. suite/verifiable.jsonl) "
                             f"or a local reward-model folder as --completion-reward")
    lines = []
    if blind:
        lines.append(f"{source}: {len(blind)} of {len(examples)} examples have no reference answer the verifier "
                     f"can check (first: {_first(blind)}); their reward is always 0 and they teach nothing")
    edited = [ex.id for ex in examples if edited_answer(ex)]
    if edited:
        lines.append(f"{source}: {len(edited)} examples have an 'answer' that differs from meta.entry's (first: "
                     f"{_first(edited)}); the top-level answer wins, checked by exact match instead of the task's "
                     f"scorer")
    return lines
