"""Seeded uniform selection: the baseline every other method is measured against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from selectgym.proxies.table import FeatureTable
from selectgym.selectors.base import Selector


@dataclass
class RandomSelector(Selector):
    """Every example gets an independent uniform score, so the top ``k`` is a uniform draw of ``k``."""

    name: ClassVar[str] = "random"
    reselects: ClassVar[tuple[str, ...]] = ("sft", "dpo")

    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        return rng.random(len(train))
