"""The ``Pool``: one normalised type for every training-data format selectgym reads.

An ``Example`` keeps the chat-style prompt, whichever targets its format has (an SFT response, a
chosen/rejected pair, a verifiable answer), free-form ``meta`` (task, ground-truth labels) and the
original ``raw`` record, so a selection can be written back in the pool's own format.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from selectgym.errors import SelectgymError
from selectgym.utils import stable_hash

Message = dict[str, str]


@dataclass(frozen=True)
class Example:
    """One training example, whatever format it came from."""

    id: str
    prompt: list[Message]
    response: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    answer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``preference``, ``verifiable`` or ``sft``."""
        if self.chosen is not None:
            return "preference"
        if self.answer is not None and self.response is None:
            return "verifiable"
        return "sft"

    @property
    def target(self) -> str:
        """The text an SFT loss trains on: the response, else the chosen reply, else the answer."""
        for text in (self.response, self.chosen, self.answer):
            if text is not None:
                return text
        raise SelectgymError(f"example {self.id} has no response, chosen reply or answer to train on")

    def content(self) -> dict[str, Any]:
        """The fields that define the example (not its id, meta or raw form)."""
        return {
            "prompt": self.prompt,
            "response": self.response,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "answer": self.answer,
        }


@dataclass(frozen=True)
class Pool(Sequence[Example]):
    """An ordered, immutable collection of examples from one source in one format."""

    examples: tuple[Example, ...]
    format: str
    source: str = "<memory>"

    def __post_init__(self) -> None:
        ids = [ex.id for ex in self.examples]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise SelectgymError(f"{self.source}: example id {dup!r} appears more than once; ids must be unique")

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return Pool(self.examples[i], self.format, self.source)
        return self.examples[i]

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    @property
    def ids(self) -> list[str]:
        """Example ids in pool order."""
        return [ex.id for ex in self.examples]

    @property
    def content_hash(self) -> str:
        """Hash of every example's id and content, in order: it keys cached features."""
        return stable_hash([[ex.id, ex.content()] for ex in self.examples])

    def subset(self, ids: Sequence[str]) -> Pool:
        """The examples with these ids, in the order given."""
        by_id = {ex.id: ex for ex in self.examples}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise SelectgymError(f"{self.source}: {len(missing)} ids not in the pool (first: {missing[0]!r})")
        return Pool(tuple(by_id[i] for i in ids), self.format, self.source)

    def index(self, example_id: str) -> int:  # type: ignore[override]
        """Position of an id in the pool."""
        return self.ids.index(example_id)


def assign_ids(examples: list[Example]) -> list[Example]:
    """Give examples without an id a content-derived one; repeats of the same content get ``-1``, ``-2``.

    Ids therefore survive re-ordering and re-loading, and exact duplicates stay distinguishable.
    """
    seen: dict[str, int] = {}
    out = []
    for ex in examples:
        if ex.id:
            out.append(ex)
            continue
        base = "ex-" + stable_hash(ex.content(), 12)
        n = seen.get(base, 0)
        seen[base] = n + 1
        new_id = base if n == 0 else f"{base}-{n}"
        out.append(Example(new_id, ex.prompt, ex.response, ex.chosen, ex.rejected, ex.answer, ex.meta, ex.raw))
    return out
