"""The selector interface: features + budget + seed -> chosen example ids with their scores."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from selectgym.budget import DEFAULT_SHARE, resolve_budget
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable


@dataclass
class Selection:
    """The chosen ids in selection order, their scores, and every example's score in pool order."""

    ids: list[str]
    scores: np.ndarray
    method: str
    pool_scores: np.ndarray | None = None
    info: dict[str, Any] | None = None


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm; an all-zero row stays zero (its cosine with anything is 0)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` cosine similarities between the rows of ``a`` and ``b``."""
    if a.shape[1:] != b.shape[1:]:
        raise SelectgymError(f"training rows have shape {a.shape[1:]} but target rows {b.shape[1:]}; compute both "
                             "feature tables with the same projection (same proj_dim and seed)")
    return normalise_rows(a) @ normalise_rows(b).T


def top_k(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first; ties broken by a seeded random order."""
    tiebreak = rng.permutation(len(scores))
    return np.lexsort((tiebreak, -scores))[:k]


class Selector(ABC):
    """Score every example, then keep the top ``k``. Subclasses with rounds override ``select``.

    Options are constructor arguments (subclasses are dataclasses), so ``get_selector(name, **options)``
    and ``selectgym select --option key=value`` reach them.
    """

    name: ClassVar[str] = "selector"
    #: the share of the pool a user gets when they give no budget (the method's published default)
    default_budget: ClassVar[float] = DEFAULT_SHARE

    @abstractmethod
    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        """One score per training example (higher is better), in pool order."""

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
