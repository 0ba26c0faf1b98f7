"""The selector interface: features + budget + seed -> chosen example ids with their scores."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable


def resolve_budget(budget: float | int, n: int) -> int:
    """A budget as a count: a float in (0, 1) is a share of the pool, an integer >= 1 a count."""
    if n <= 0:
        raise SelectgymError("the pool is empty; there is nothing to select from")
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or math.isnan(budget):
        raise SelectgymError(f"budget must be a share in (0, 1) or a count >= 1, got {budget!r}")
    if isinstance(budget, float) and 0 < budget < 1:
        return max(1, round(budget * n))
    if budget >= 1 and float(budget).is_integer():
        k = int(budget)
        if k > n:
            raise SelectgymError(f"budget {k} is above the pool size {n}; use at most {n} or a share like 0.05")
        return k
    raise SelectgymError(f"budget must be a share in (0, 1) or a whole count in [1, {n}], got {budget!r}")


@dataclass
class Selection:
    """The chosen ids in selection order, their scores, and every example's score in pool order."""

    ids: list[str]
    scores: np.ndarray
    method: str
    pool_scores: np.ndarray | None = None
    info: dict[str, Any] | None = None


class Selector(ABC):
    """Score every example, then keep the top ``k``. Subclasses with rounds override ``select``."""

    name: str = "selector"

    @abstractmethod
    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        """One score per training example (higher is better), in pool order."""

    def select(self, train: FeatureTable, val: FeatureTable | None, budget: float | int, seed: int) -> Selection:
        """The top-``k`` examples by score; ties are broken by a seeded random order."""
        k = resolve_budget(budget, len(train))
        rng = np.random.default_rng(seed)
        scores = np.asarray(self.score(train, val, rng), dtype=np.float64)
        if scores.shape != (len(train),):
            raise SelectgymError(f"{self.name} produced {scores.shape} scores for {len(train)} examples")
        if np.isnan(scores).any():
            raise SelectgymError(f"{self.name} produced NaN scores; check the features for NaN losses or gradients")
        tiebreak = rng.permutation(len(train))
        order = np.lexsort((tiebreak, -scores))[:k]
        return Selection([train.ids[i] for i in order], scores[order], self.name, scores)
