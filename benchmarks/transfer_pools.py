"""The evaluation pools of the transfer benchmark: one in the policy's training families, three held out.

The training families are those listed in ``configs/policy_transfer.yaml`` (half of the 16 families
``mini`` was pretrained on); the held-out pools draw only from the other half. Each pool is drawn once
per seed and gets the same features as the training pools (``selectgym.agents.pools.build_pool``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from selectgym.agents.pools import TrainingPools
from selectgym.data.suite import SuiteConfig

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "policy_transfer.yaml"


def policy_config() -> dict[str, Any]:
    """The default policy's config (AgentConfig keys, ``training_pools`` among them)."""
    return yaml.safe_load(CONFIG.read_text())


def training_pools() -> TrainingPools:
    return TrainingPools(**policy_config()["training_pools"])


TRAIN_FAMILIES: dict[str, dict[str, Any]] = training_pools().families
#: the other half of mini's families: held-out pools draw only from these
HELD_OUT_FAMILIES: dict[str, dict[str, Any]] = {
    "lcm": {}, "products": {}, "simple_equations": {}, "decimal_arithmetic": {}, "prime_factorization": {},
    "fraction_simplification": {}, "number_filtering": {}, "leg_counting": {},
}
assert not set(TRAIN_FAMILIES) & set(HELD_OUT_FAMILIES)


@dataclass(frozen=True)
class PoolSpec:
    """One kind of evaluation pool: its target and off-target families, target share and defect rate."""

    name: str
    target: tuple[str, ...]
    off_target: tuple[str, ...]
    held_out: bool
    target_share: float = 0.35
    defect_rate: float = 0.3
    size: int = 300

    @property
    def families(self) -> list[str]:
        return [*self.target, *self.off_target]

    def suite_config(self, seed: int, validation_size: int = 64) -> SuiteConfig:
        table = {**TRAIN_FAMILIES, **HELD_OUT_FAMILIES}
        return SuiteConfig(seed=seed, size=self.size, validation_size=validation_size,
                           target_share=self.target_share, defect_rate=self.defect_rate,
                           target_tasks={f: table[f] for f in self.target},
                           off_target_tasks={f: table[f] for f in self.off_target})


#: the pools the benchmark scores methods on (each drawn once per seed)
EVAL_POOLS = (
    PoolSpec("suite", ("basic_arithmetic", "chain_sum"), ("spell_backward", "letter_counting", "gcd", "count_bits"),
             held_out=False),
    PoolSpec("heldout_products_lcm", ("products", "lcm"), ("prime_factorization", "number_filtering"), held_out=True),
    PoolSpec("heldout_decimal_equations", ("decimal_arithmetic", "simple_equations"),
             ("fraction_simplification", "leg_counting"), held_out=True),
    PoolSpec("heldout_noisy", ("leg_counting", "number_filtering"), ("products", "lcm"), held_out=True,
             defect_rate=0.5),
)
