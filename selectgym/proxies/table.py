"""``FeatureTable``: the in-memory form of computed features that selectors and environments read.

One row per example, every array's first axis aligned with ``ids``. Array names are a contract:

Training pool table (``store.table("train")``):
    ``grad``        (N, d)  projected SFT gradient over the LoRA parameters (sgd, raw)
    ``grad_adam``   (N, d)  projected Adam-normalised SFT gradient (needs an optimizer state)
    ``loss``        (N,)    SFT loss (token mean over the response)
    ``length``      (N,)    response tokens
    ``embedding``   (N, e)  MiniLM sentence embedding of prompt + response
    ``dpo_gap``     (N,)    DPO implicit reward gap (preference pools)
    ``grpo_grad``   (N, d)  projected GRPO candidate gradient (0 where the group has no signal)
    ``grpo_signal`` (N,)    1 if the rollouts' rewards differed, else 0
    ``pass_rate``   (N,)    share of rollouts the verifier accepted
Validation table (``store.table("val")``):
    ``grad``        (M, d)  projected SFT gradient of the reference answer (never Adam-normalised)
    ``pg_grad``     (M, d)  NICE policy gradient (reward-weighted REINFORCE)
    ``grpo_grad``   (M, d)  projected GRPO gradient per validation problem
    ``pass_rate``   (M,)
Several checkpoints (LESS) use ``name@ckpt`` keys, with ``meta["checkpoints"] = {ckpt: mean_lr}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selectgym.errors import SelectgymError

#: array name -> the ``selectgym features`` name that computes it (where the two differ)
FEATURE_OF_ARRAY = {"pg_grad": "nice", "grpo_grad": "grpo", "grpo_signal": "grpo", "pass_rate": "grpo"}


@dataclass
class FeatureTable:
    """Per-example feature arrays aligned with ``ids``, plus free-form ``meta`` (config, projection...)."""

    ids: list[str]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = list(self.ids)
        for name, arr in self.arrays.items():
            if len(arr) != len(self.ids):
                raise SelectgymError(f"feature {name!r} has {len(arr)} rows but the table has {len(self.ids)} ids")

    def __len__(self) -> int:
        return len(self.ids)

    def has(self, name: str) -> bool:
        return name in self.arrays

    def get(self, name: str) -> np.ndarray:
        """An array by name; a clear error lists what the table has and how to compute the rest."""
        if name not in self.arrays:
            have = ", ".join(sorted(self.arrays)) or "nothing"
            feature = FEATURE_OF_ARRAY.get(name.partition("@")[0], name.partition("@")[0])
            raise SelectgymError(f"features have no {name!r} (they have: {have}); recompute them with "
                                 f"`selectgym features --features ... {feature}`")
        return self.arrays[name]

    def derived(self, key: tuple, build: Callable[[], Any]) -> Any:
        """``build()``, computed once per table and shared by everything holding it: eight vector-env copies
        of a reward keep one prepared (N, d) array, not eight. Arrays are never replaced after construction."""
        cache = self.__dict__.setdefault("_derived", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def subset(self, rows: Sequence[int] | np.ndarray) -> FeatureTable:
        """The table restricted to these row positions, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        return FeatureTable([self.ids[i] for i in rows], {k: v[rows] for k, v in self.arrays.items()}, dict(self.meta))

    def schema(self) -> dict[str, list[int]]:
        """Name -> per-row shape: what a saved policy records and checks against."""
        return {k: list(np.shape(v)[1:]) for k, v in sorted(self.arrays.items())}
