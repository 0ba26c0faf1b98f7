"""The response-length rule: the longest responses first (Zhao et al., 2024, "Long Is More for Alignment").

A baseline that reads nothing but the ``length`` feature (response tokens), and that the recent selection
literature found hard to beat for instruction tuning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from selectgym.proxies.table import FeatureTable
from selectgym.selectors.base import Selector, check_flag


@dataclass
class LengthSelector(Selector):
    """Score = response tokens (``shortest=True``: minus them)."""

    shortest: bool = False

    name: ClassVar[str] = "length"
    needs: ClassVar[tuple[str, ...]] = ("sft",)

    def __post_init__(self) -> None:
        check_flag(self.name, "shortest", self.shortest)

    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        length = np.asarray(train.get("length"), dtype=np.float64)
        return -length if self.shortest else length
