"""What the selection envs share: K-means clusters as actions, a budget, batches taken in score order; and what
every env declares for the agent code (``AgentTraits``), so that no code branches on an env id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from selectgym.budget import resolve_budget
from selectgym.envs.rewards import StepReward, make_reward
from selectgym.envs.summaries import FEATURES, cluster_labels, feature_matrix, observed_columns
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable


def order_scores(x: np.ndarray, order_by: str, columns: Sequence[str] = FEATURES) -> np.ndarray:
    """The within-cluster ranking score: a column of ``x`` (``-name`` ranks ascending), or zeros for ``none``."""
    if order_by == "none":
        return np.zeros(len(x))
    name = order_by.removeprefix("-")
    if name not in columns:
        raise SelectgymError(f"order_by {order_by!r} is not one of {list(columns)} (prefix '-' for ascending) "
                             f"or 'none'")
    column = x[:, list(columns).index(name)]
    return -column if order_by.startswith("-") else column.copy()


class AgentTraits:
    """What the agent code needs to know of an env, declared by the env class (the defaults: a cluster env)."""

    #: actions name K-means clusters: the agent clusters a pool once and shares ``labels`` between env copies
    clusters: ClassVar[bool] = True
    #: the observation is ``chunk`` rows of per-candidate columns and an action names a candidate, so one shared
    #: network scores every candidate (``policy_kwargs`` sizes it) and a rollout can score the whole pool
    scores_candidates: ClassVar[bool] = False
    #: takes ``pools`` (more ``(table, val_table, reward_val_table)``) and ``reward_val_table``, one pool per reset
    many_pools: ClassVar[bool] = False
    #: the algorithms that can train it (None: any)
    algorithms: ClassVar[tuple[str, ...] | None] = None
    #: the keyword arguments an agent config sets, in order (``features`` comes from the config's ``observe``)
    agent_settings: ClassVar[tuple[str, ...]] = ("budget", "n_clusters", "order_by", "features", "cluster_seed",
                                                 "train_grad", "val_grad")

    @classmethod
    def policy_kwargs(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """What the agent's network must know of the observation's layout, from ``agent_settings`` values."""
        return {}


class SelectionEnv(AgentTraits, gym.Env):
    """Base of the selection MDPs: each action names a cluster; the env takes that cluster's next rows.

    Rows inside a cluster are taken in descending ``order_by`` score, ties in a random order drawn from
    ``self.np_random`` at reset; ``taken[-1]`` holds the rows of the last step. An action naming an exhausted
    cluster is redirected to the lowest-index open one (``info["redirected"]``), so every step makes progress;
    ``action_masks()`` lets MaskablePPO avoid that altogether. Subclasses set ``observation_space``,
    ``_batch_size`` and ``_observation``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, table: FeatureTable, val_table: FeatureTable | None = None, *, budget: float | int = 0.05,
                 n_clusters: int = 16, order_by: str = "alignment", features: Sequence[str] | None = None,
                 reward: str | StepReward = "linear", reward_kwargs: dict[str, Any] | None = None,
                 cluster_feature: str = "embedding", cluster_seed: int = 0, labels: np.ndarray | None = None,
                 train_grad: str = "grad", val_grad: str = "grad") -> None:
        self.table, self.val_table = table, val_table
        self.n_examples = len(table)
        self.budget = resolve_budget(budget, self.n_examples)
        self.n_clusters = int(n_clusters)
        if labels is None:
            labels = cluster_labels(table, self.n_clusters, cluster_seed, cluster_feature)
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (self.n_examples,) or labels.min() < 0 or labels.max() >= self.n_clusters:
            raise SelectgymError(f"labels must be one cluster in [0, {self.n_clusters}) per example "
                                 f"({self.n_examples} rows)")
        self.x, self.present = feature_matrix(table, val_table, features, train_grad, val_grad)
        self.columns = observed_columns(features)
        self.order_by = order_by
        self.scores = order_scores(self.x, order_by, self.columns)
        if order_by != "none" and not self.present[self.columns.index(order_by.removeprefix("-"))]:
            raise SelectgymError(f"order_by {order_by!r} needs the feature {order_by.removeprefix('-')!r}, which these "
                                 f"features lack; use order_by 'none' or compute it")
        self.set_slots(labels)
        self.reward = make_reward(reward, table, val_table, **(reward_kwargs or {}))
        self.action_space = spaces.Discrete(self.n_clusters)
        self.ptr = np.zeros(self.n_clusters, dtype=np.int64)
        self.taken: list[np.ndarray] = []
        self.n_taken = 0

    def set_slots(self, slot_of_row: np.ndarray) -> None:
        """Which slot (action) each row belongs to; the rows of slot ``i`` are ``self.groups[i]``."""
        self.slot_of_row = slot_of_row
        self.groups = [np.flatnonzero(slot_of_row == c) for c in range(self.n_clusters)]
        self.sizes = np.array([len(g) for g in self.groups])
        self._order = np.lexsort((-self.scores, slot_of_row))
        ranked = np.stack([slot_of_row[self._order], self.scores[self._order]])
        self._has_ties = bool((np.diff(ranked, axis=1) == 0).all(axis=0).any())
        self.members: list[np.ndarray] = []  # rows of each slot in taking order; split again by the next reset

    def _batch_size(self, slot: int) -> int:
        raise NotImplementedError

    def _observation(self) -> np.ndarray:
        raise NotImplementedError

    def _on_reset(self) -> None:
        """Rebuild cached observation parts after ``reset`` drew the within-cluster order."""

    def _on_take(self, slot: int) -> None:
        """Update cached observation parts after rows of ``slot`` were taken."""

    def action_masks(self) -> np.ndarray:
        """True for every cluster that still has rows (for sb3-contrib's MaskablePPO)."""
        return self.ptr < self.sizes

    def selected_rows(self) -> np.ndarray:
        """Table rows taken so far, in selection order."""
        return np.concatenate(self.taken) if self.taken else np.zeros(0, dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self._has_ties:  # only equal scores in one cluster leave something to chance
            order = np.lexsort((self.np_random.permutation(self.n_examples), -self.scores, self.slot_of_row))
            self.members = np.split(order, np.cumsum(self.sizes)[:-1])
        elif not self.members:  # a fixed order: split once (episodes are a few steps, so resets are hot)
            self.members = np.split(self._order, np.cumsum(self.sizes)[:-1])
        self.ptr = np.zeros(self.n_clusters, dtype=np.int64)
        self.taken, self.n_taken = [], 0
        self.reward.reset()
        self._on_reset()
        return self._observation(), {}

    def step(self, action):
        if not self.members or self.n_taken >= self.budget:
            raise gym.error.ResetNeeded("the episode is over (or never started); call reset() before step()")
        slot = int(action)
        open_slots = self.action_masks()
        redirected = not (0 <= slot < self.n_clusters and open_slots[slot])
        if redirected:
            slot = int(np.argmax(open_slots))
        start = int(self.ptr[slot])
        n = min(self._batch_size(slot), int(self.sizes[slot]) - start, self.budget - self.n_taken)
        rows = self.members[slot][start:start + n]
        self.ptr[slot] += n
        self.taken.append(rows)
        self.n_taken += n
        reward = float(self.reward.step(rows))
        self._on_take(slot)
        terminated = self.n_taken >= self.budget
        if terminated:
            reward += float(self.reward.finish(self.selected_rows()))
        info = {"slot": slot, "redirected": redirected}  # kept small: vector envs deep-copy it every step
        return self._observation(), reward, terminated, False, info
