"""Difficulty-based preference selection by the DPO implicit reward gap (arXiv 2508.04149).

The smallest *signed* gaps come first: pairs the DPO model barely separates, or ranks the wrong
way round, carry the strongest learning signal. The paper keeps 10% of the pool. The literature disagrees on
the sign (other work keeps the pairs with the largest margins), so ``mode=largest`` (``dpo_gap:largest`` in a
benchmark) takes those instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable
from selectgym.proxies.vectors import EXCLUDED, NonFiniteRows
from selectgym.selectors.base import Selector, check_flag


@dataclass
class DpoGapSelector(Selector):
    """Score = minus the gap ``r(x, chosen) - r(x, rejected)``, so the top ``k`` are the smallest gaps (``mode``
    ``largest``: the gap itself).

    Default budget: 10% of the pool (the paper's ratio). A NaN or inf gap is an error, or with
    ``skip_nonfinite`` that pair is left out (never selected) with a warning that counts them.
    """

    skip_nonfinite: bool = False
    mode: str = "smallest"

    name: ClassVar[str] = "dpo_gap"
    default_budget: ClassVar[float] = 0.1
    needs: ClassVar[tuple[str, ...]] = ("preference",)

    def __post_init__(self) -> None:
        check_flag(self.name, "skip_nonfinite", self.skip_nonfinite)
        if self.mode not in ("smallest", "largest"):
            raise SelectgymError(f"dpo_gap mode must be smallest (the paper's) or largest, got {self.mode!r}")

    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        bad = NonFiniteRows(train, self.name, self.skip_nonfinite)
        gap = bad.check_vector("dpo_gap", np.asarray(train.get("dpo_gap"), dtype=np.float64))
        scores = gap if self.mode == "largest" else -gap
        scores[bad.finish()] = EXCLUDED
        return scores
