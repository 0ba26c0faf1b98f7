"""Learnability: the prompts the proxy solves about half the time first, p(1 - p) of its pass rate.

A prompt it always or never solves gives GRPO no signal (every sampled answer gets the same reward); DOTS- and
LIMR-style work select for GRPO by this rule. Reads the verifiable pool's ``pass_rate`` (the ``grpo`` feature).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from selectgym.proxies.table import FeatureTable
from selectgym.selectors.base import Selector


@dataclass
class LearnabilitySelector(Selector):
    """Score = p (1 - p), p = the proxy's pass rate on the prompt (largest at p = 0.5)."""

    name: ClassVar[str] = "learnability"
    needs: ClassVar[tuple[str, ...]] = ("verifiable",)

    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        p = np.asarray(train.get("pass_rate"), dtype=np.float64)
        return p * (1.0 - p)
