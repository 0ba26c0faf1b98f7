"""``PolicySelector``: a saved RL policy (``selectgym train-agent``) as a selector beside the classic ones.

It lives with the agents (it rolls one out) and is registered in ``selectgym.selectors.SELECTORS`` by its dotted
path, so ``get_selector("policy", policy_path=...)`` reaches it without the selectors importing the agents.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from selectgym.agents.apply import apply_policy
from selectgym.proxies.table import FeatureTable
from selectgym.selectors.base import Selection, Selector


class PolicySelector(Selector):
    """Pick examples by rolling a saved policy out over the pool's clusters (no scoring pass of its own).

    ``subtasks``: one label per validation row, to share the budget among the target's subtasks (ExampleSelect
    policies; ``selectgym.selectors.coverage``)."""

    name = "policy"
    needs = ("sft", "preference", "verifiable")  # a policy may observe features of every kind of pool
    needs_any = True  # it checks the features it is given against what it observes
    balances_subtasks = True

    def __init__(self, policy_path: str | Path, subtasks: Sequence[str] | None = None) -> None:
        self.policy_path = Path(policy_path)
        self.subtasks = None if subtasks is None else list(subtasks)

    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        """The policy's order over the whole pool: the first pick scores N, the last 1."""
        seed = int(rng.integers(2**31))
        order = apply_policy(self.policy_path, budget=len(train), seed=seed, table=train, val_table=val,
                             subtasks=self.subtasks).ids
        position = {id_: i for i, id_ in enumerate(order)}
        return np.array([len(train) - position[id_] for id_ in train.ids], dtype=np.float64)

    def select(self, train: FeatureTable, val: FeatureTable | None, budget: float | int, seed: int) -> Selection:
        """The policy's picks in order; a rollout stops at the budget, so it is not a cut of ``score``."""
        return apply_policy(self.policy_path, budget=budget, seed=seed, table=train, val_table=val,
                            subtasks=self.subtasks)
