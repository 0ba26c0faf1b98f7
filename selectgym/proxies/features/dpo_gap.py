"""The preference pool's feature: the DPO implicit reward gap of the warmed-up proxy against its own base."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from selectgym.errors import SelectgymError
from selectgym.proxies.dpo import REDUCTIONS, dpo_reward_gaps
from selectgym.proxies.features.base import Feature, choice, positive


@dataclass
class DpoGap(Feature):
    name = "dpo_gap"
    help = "DPO implicit reward gap (preference pools)"
    pool_kind = "preference"
    train_arrays = ("dpo_gap",)

    dpo_beta: float = field(default=0.1, metadata={"help": "DPO implicit reward scale beta"})
    dpo_reduction: str = field(default="sum", metadata={"help": "DPO log-prob over response tokens: sum or mean"})

    def __post_init__(self) -> None:
        choice("dpo_reduction", self.dpo_reduction, REDUCTIONS)
        positive("dpo_beta", self.dpo_beta, "0.1")

    def check(self, cfg, pool, val):
        odd = next((ex for ex in pool if ex.kind != "preference"), None)
        if odd is not None:
            raise SelectgymError(f"dpo_gap needs a preference pool (prompt/chosen/rejected); {pool.source} is "
                                 f"{pool.format} (example {odd.id!r}); drop dpo_gap from features for this pool")

    def train(self, proxy, examples, cache):
        cfg = proxy.cfg
        gaps = dpo_reward_gaps(proxy.model, None, proxy.tokenizer, list(examples), beta=self.dpo_beta,
                               reduction=self.dpo_reduction, batch_size=cfg.batch_size, max_length=cfg.max_length)
        return {"dpo_gap": np.asarray(gaps, dtype=np.float32)}
