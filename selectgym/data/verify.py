"""Verifiers: reasoning-gym's own scorer for suite problems, exact match otherwise."""

from __future__ import annotations

from functools import lru_cache

from selectgym.data.pool import Example


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


def score(example: Example, completion: str) -> float:
    """Reward in [0, 1] for a completion to a verifiable example (0 for an answer the task's scorer cannot parse)."""
    answer = extract_answer(completion)
    entry = example.meta.get("entry")
    task = example.meta.get("task")
    if entry is not None and task:
        try:
            fn = _scorer(task)
        except (KeyError, ValueError, LookupError):
            fn = None
        if fn is not None:
            try:
                return float(fn(answer, entry) or 0.0)
            except Exception:  # noqa: BLE001 - some reasoning-gym scorers raise on unparsable answers: a wrong answer
                return 0.0
    reference = (example.answer or "").strip()
    return float(bool(reference) and answer == reference)  # no reference: nothing can match, not even silence
