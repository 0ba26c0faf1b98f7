"""Difficulty-based preference selection by the DPO implicit reward gap (arXiv 2508.04149).

The smallest *signed* gaps come first: pairs the DPO model barely separates, or ranks the wrong
way round, carry the strongest learning signal. The paper keeps 10% of the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from selectgym.proxies.table import FeatureTable
from selectgym.selectors.base import Selector


@dataclass
class DpoGapSelector(Selector):
    """Score = minus the gap ``r(x, chosen) - r(x, rejected)``, so the top ``k`` are the smallest gaps.

    Default budget: 10% of the pool (the paper's ratio).
    """

    name: ClassVar[str] = "dpo_gap"
    default_budget: ClassVar[float] = 0.1

    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        return -np.asarray(train.get("dpo_gap"), dtype=np.float64)
