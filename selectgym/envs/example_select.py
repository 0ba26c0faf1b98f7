"""``selectgym/ExampleSelect-v0``: pick single examples from chunks of candidates, over many pools.

FeatureSelect chooses a cluster and takes its rows in alignment order, so at best it re-orders LESS's
picks and cannot refuse an aligned example whose answer is wrong. Here every candidate is described by its
own features, so a policy can weigh alignment against the signs of a defect (a high proxy loss, a low DPO
gap, an odd length) and against redundancy with what it already took. Observations are per candidate and
the actions name candidates, so a policy that scores each candidate with one shared network
(``selectgym.agents.example_policy``) is permutation-invariant and applies to a pool of any size.

Domain randomisation: ``pools`` gives the env several pools; every ``reset`` draws one from
``self.np_random``, so one vector env whose copies hold the same list trains on a distribution of pools
rather than on one pool's quirks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from selectgym.budget import resolve_budget
from selectgym.envs.rewards import StepReward, make_reward
from selectgym.envs.selection import AgentTraits
from selectgym.envs.summaries import FEATURE_BOUND, example_matrix, observed_columns
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable

#: per-candidate columns after the observed features: alignment z-scored within the pool, the largest cosine
#: similarity of the candidate's embedding to an example already taken, and the share of the budget left.
EXAMPLE_EXTRAS = ("alignment_z", "redundancy", "budget_left")


def candidate_columns(features: Sequence[str] | None) -> list[str]:
    """Every per-candidate column of the observation, in order."""
    return [*observed_columns(features), *EXAMPLE_EXTRAS]


class PoolState:
    """One pool's per-example matrix and unit embeddings, computed once and shared by every env copy."""

    def __init__(self, table: FeatureTable, val_table: FeatureTable | None, features: Sequence[str] | None,
                 train_grad: str, val_grad: str, redundancy_feature: str, alignment_target: str = "mean") -> None:
        self.table = table
        x, self.present, _ = example_matrix(table, val_table, features, train_grad, val_grad, alignment_target)
        self.x = x.astype(np.float32)
        if not table.has(redundancy_feature):
            raise SelectgymError(f"ExampleSelect measures redundancy on {redundancy_feature!r}, which the features "
                                 f"lack; compute it (feature 'embedding') or set redundancy_feature")
        emb = np.asarray(table.get(redundancy_feature), dtype=np.float32).reshape(len(table), -1)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        self.unit = emb / np.where(norms > 0, norms, 1.0)


class ExampleSelectEnv(AgentTraits, gym.Env):
    """Choose one example at a time among ``chunk`` candidates until the budget is spent.

    ## Action Space
    ``Discrete(chunk)``: the candidate to take.

    ## Observation Space
    ``Box(-5, 5, (chunk * P,), float32)``: ``P = len(candidate_columns(features))`` numbers per candidate,
    candidate by candidate: the observed features (as in FeatureSelect: alignment, pass_rate, z-scored
    dpo_gap, loss and log length, zeros for an absent one, then any other scalar feature asked for), the
    alignment z-scored within the pool, the largest cosine similarity of the candidate's ``embedding`` to an
    example already taken (0 before the first), and the share of the budget left.

    ## Starting State
    One pool drawn from ``pools`` (the first, ``table``, when there is one), nothing taken; every step's
    candidates are ``chunk`` distinct examples not yet taken, drawn from ``self.np_random``.

    ## Rewards
    The configured step reward of the one-example batch (``selectgym.envs.rewards``); with
    ``reward_val_table`` the reward reads that target table instead of ``val_table``, so a reward can be
    measured on a split of the target the observed alignment never saw. A terminal reward (``trained``) is added to
    the last step's.

    ## Episode End
    Terminates when ``budget`` examples (of the drawn pool) are taken.

    ## Arguments
    * ``table``, ``val_table``, ``reward_val_table``: the pool, its target, and the reward's target.
    * ``pools``: more ``(table, val_table, reward_val_table)`` triples to draw from at every reset; a fourth item, a
      dict, adds that pool's own reward settings (the texts a ``trained`` or ``proxy`` reward trains on).
    * ``budget``, ``chunk``, ``features``, ``reward``, ``reward_kwargs``, ``train_grad``, ``val_grad``,
      ``redundancy_feature`` (``embedding``).

    ## Version History
    * v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": []}
    clusters = False
    scores_candidates = True
    many_pools = True
    algorithms = ("ppo", "a2c")  # the candidate scorer is a plain actor-critic policy
    agent_settings = ("budget", "chunk", "features", "train_grad", "val_grad", "alignment_target")

    @classmethod
    def policy_kwargs(cls, settings: dict[str, Any]) -> dict[str, Any]:
        return {"chunk": settings["chunk"], "per_candidate": len(candidate_columns(settings["features"]))}

    def __init__(self, table: FeatureTable, val_table: FeatureTable | None = None, *, budget: float | int = 0.05,
                 chunk: int = 32, features: Sequence[str] | None = None, reward: str | StepReward = "linear",
                 reward_kwargs: dict[str, Any] | None = None, reward_val_table: FeatureTable | None = None,
                 pools: Sequence[tuple] = (), train_grad: str = "grad", val_grad: str = "grad",
                 redundancy_feature: str = "embedding", alignment_target: str = "mean") -> None:
        if chunk < 1:
            raise SelectgymError(f"chunk must be >= 1, got {chunk}")
        # each pool: (table, val_table, reward_val_table[, what its reward reads beyond its settings: its texts])
        triples = [(table, val_table, reward_val_table, None), *[tuple(p) + (None,) * (4 - len(p)) for p in pools]]
        self.chunk, self.budget_setting = int(chunk), budget
        self.observed, self.columns = observed_columns(features), candidate_columns(features)
        self.states, self.rewards = [], []
        for t, v, rv, context in triples:
            self.states.append(t.derived(("example_select", tuple(features or ()), train_grad, val_grad,
                                          redundancy_feature, alignment_target, id(v)),
                                         lambda t=t, v=v: PoolState(t, v, features, train_grad, val_grad,
                                                                    redundancy_feature, alignment_target)))
            self.rewards.append(make_reward(reward, t, rv if rv is not None else v,
                                            **{**(reward_kwargs or {}), **(context or {})}))
            need = resolve_budget(budget, len(t))
            if len(t) < need + 1:
                raise SelectgymError(f"a pool of {len(t)} examples is too small for a budget of {need}")
        self.present = self.states[0].present
        self.observation_space = spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (self.chunk * len(self.columns),),
                                            np.float32)
        self.action_space = spaces.Discrete(self.chunk)
        self._use(0)

    # -- the pool of this episode ------------------------------------------------------------------------------
    def _use(self, i: int) -> None:
        self.state, self.reward = self.states[i], self.rewards[i]
        self.table = self.state.table
        self.n_examples = len(self.table)
        self.budget = resolve_budget(self.budget_setting, self.n_examples)
        self.open = np.ones(self.n_examples, dtype=bool)
        self.redundancy = np.zeros(self.n_examples, dtype=np.float32)
        self.taken: list[int] = []
        self.candidates = np.zeros(0, dtype=np.int64)

    def candidate_matrix(self, rows: np.ndarray, redundancy: np.ndarray | None = None) -> np.ndarray:
        """The observation rows (``len(rows) x P``) of these examples in the current state (``redundancy``: their
        redundancy kept by the caller, for picks whose update of the whole pool is deferred)."""
        left = np.full((len(rows), 1), 1.0 - len(self.taken) / self.budget, dtype=np.float32)
        red = self.redundancy[rows] if redundancy is None else np.asarray(redundancy, dtype=np.float32)
        return np.concatenate([self.state.x[rows], red[:, None], left], axis=1)

    def _observation(self) -> np.ndarray:
        open_rows = np.flatnonzero(self.open)
        picked = self.np_random.choice(open_rows, size=min(self.chunk, len(open_rows)), replace=False)
        # fewer open rows than candidates: the last one fills the remaining places
        self.candidates = np.concatenate([picked, np.repeat(picked[-1:], self.chunk - len(picked))])
        return self.candidate_matrix(self.candidates).reshape(-1)

    # -- gym API -----------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._use(int(self.np_random.integers(len(self.states))) if len(self.states) > 1 else 0)
        self.reward.reset()
        return self._observation(), {}

    def take(self, row: int, update_redundancy: bool = True) -> float:
        """Add one example to the selection; its reward. ``update_redundancy=False`` leaves the other examples'
        redundancy for :meth:`update_redundancy` (one matrix product for many picks instead of one pass each)."""
        self.open[row] = False
        self.taken.append(row)
        if update_redundancy:
            self.redundancy = np.maximum(self.redundancy, self.state.unit @ self.state.unit[row])
        return float(self.reward.step(np.array([row])))

    def update_redundancy(self, rows: Sequence[int], block: int = 65_536) -> None:
        """Fold picks taken with ``update_redundancy=False`` into every example's redundancy (in row blocks)."""
        if not len(rows):
            return
        picked = self.state.unit[np.asarray(rows, dtype=np.int64)].T
        for start in range(0, self.n_examples, block):
            part = slice(start, start + block)
            self.redundancy[part] = np.maximum(self.redundancy[part], (self.state.unit[part] @ picked).max(axis=1))

    def step(self, action):
        if not len(self.candidates) or len(self.taken) >= self.budget:
            raise gym.error.ResetNeeded("the episode is over (or never started); call reset() before step()")
        row = int(self.candidates[int(action)])
        reward = self.take(row)
        terminated = len(self.taken) >= self.budget
        if terminated:
            reward += float(self.reward.finish(self.selected_rows()))
        obs = self._observation() if not terminated else np.zeros(self.observation_space.shape, np.float32)
        return obs, reward, terminated, False, {"slot": int(action)}

    def action_masks(self) -> np.ndarray:
        return np.ones(self.chunk, dtype=bool)

    def selected_rows(self) -> np.ndarray:
        return np.asarray(self.taken, dtype=np.int64)

    def observation_schema(self) -> dict[str, Any]:
        """What a saved policy records: the per-candidate columns and the chunk (``n_clusters``: 1 for checks)."""
        return {"kind": "example_features", "shape": list(self.observation_space.shape), "n_clusters": 1,
                "chunk": self.chunk,
                "candidate_columns": self.columns,
                "features": [c for c, p in zip(self.observed, self.present, strict=True) if p]}
