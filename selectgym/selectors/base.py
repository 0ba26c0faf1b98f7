"""The selector interface: features + budget + seed -> chosen example ids with their scores.

A selector class also says what it needs from the rest of the gym (``needs``, ``balances_subtasks``,
``reselects``), so the benchmark, ``selectgym select`` and fine-tuning read it there instead of keeping their
own lists. The blockwise vector math selectors score with lives in ``selectgym.proxies.vectors``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from selectgym.budget import DEFAULT_SHARE, resolve_budget
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable
from selectgym.proxies.vectors import EXCLUDED, too_few_left


def check_flag(selector: str, name: str, value: object) -> None:
    """A yes/no option must be a bool (``--option skip_nonfinite=true``), not a string that looks like one."""
    if not isinstance(value, bool):
        raise SelectgymError(f"{selector} option {name} must be true or false, got {value!r}")


@dataclass
class Selection:
    """The chosen ids in selection order, their scores, and every example's score in pool order."""

    ids: list[str]
    scores: np.ndarray
    method: str
    pool_scores: np.ndarray | None = None
    info: dict[str, Any] | None = None


def top_k(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first; ties broken by a seeded random order.

    Rows scored ``EXCLUDED`` (left out for NaN/inf features) are never picked: asking for more rows than
    remain is an error.
    """
    tiebreak = rng.permutation(len(scores))
    order = np.lexsort((tiebreak, -scores))[:k]
    if len(order) and scores[order[-1]] == EXCLUDED:
        raise too_few_left(k, int(np.count_nonzero(scores != EXCLUDED)))
    return order


class Selector(ABC):
    """Score every example, then keep the top ``k``. Subclasses with rounds override ``select``.

    Options are constructor arguments (subclasses are dataclasses), so ``get_selector(name, **options)``
    and ``selectgym select --option key=value`` reach them.
    """

    name: ClassVar[str] = "selector"
    #: the share of the pool a user gets when they give no budget (the method's published default)
    default_budget: ClassVar[float] = DEFAULT_SHARE
    #: the kinds of pool (``sft``, ``preference``, ``verifiable``) whose features it reads; the bench charges their cost
    needs: ClassVar[tuple[str, ...]] = ()
    #: reads whichever of ``needs`` a benchmark's pools give, and reports itself what it lacks (a saved policy)
    needs_any: ClassVar[bool] = False
    #: on-demand features it reads beyond those pools' standard sets (``Feature.on_demand``, e.g. ``hidden``)
    reads: ClassVar[tuple[str, ...]] = ()
    #: takes ``subtasks`` (one label per validation row) and shares the budget among the target's subtasks
    balances_subtasks: ClassVar[bool] = False
    #: fine-tuning methods (``sft``, ``dpo``, ``grpo``) it can re-select for while the target trains
    reselects: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        """One score per training example (higher is better), in pool order; ``EXCLUDED`` never selected."""

    def select(self, train: FeatureTable, val: FeatureTable | None, budget: float | int, seed: int) -> Selection:
        """The top-``k`` examples by score; ties are broken by a seeded random order."""
        k = resolve_budget(budget, len(train))
        rng = np.random.default_rng(seed)
        scores = self.check_scores(self.score(train, val, rng), len(train))
        order = top_k(scores, k, rng)
        return Selection([train.ids[i] for i in order], scores[order], self.name, scores)

    def check_scores(self, scores: np.ndarray, n: int) -> np.ndarray:
        """Scores as float64, after checking there is one per example and none is NaN."""
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (n,):
            raise SelectgymError(f"{self.name} produced {scores.shape} scores for {n} examples")
        if np.isnan(scores).any():
            raise SelectgymError(f"{self.name} produced NaN scores; check the features for NaN losses or gradients")
        return scores

    def require_val(self, val: FeatureTable | None) -> FeatureTable:
        """The validation table, or a clear error when the features were computed without one."""
        if val is None:
            raise SelectgymError(f"the {self.name} selector needs target (validation) features, but these features "
                                 "have no validation table; compute features with a validation set")
        return val
