"""``selectgym/FeatureSelect-v0``: selection over clusters described by proxy features, transferable to new pools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from selectgym.envs.rewards import StepReward
from selectgym.envs.selection import AgentTraits, SelectionEnv
from selectgym.envs.summaries import FEATURE_BOUND, FEATURES
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable


def cluster_stats(columns: Sequence[str]) -> tuple[str, ...]:
    """The per-cluster entries of the observation, in order, for these feature columns."""
    return (*(f"{f}_{s}" for f in columns for s in ("mean", "std")), "next_score", "size_share", "taken_share")


def extras(columns: Sequence[str]) -> tuple[str, ...]:
    """The entries after the ``n_clusters x len(cluster_stats)`` block."""
    return ("budget_left", *(f"has_{f}" for f in columns))


#: per-cluster columns of the observation with the built-in features, in order.
CLUSTER_STATS = cluster_stats(FEATURES)
#: the columns after the ``n_clusters x len(CLUSTER_STATS)`` block.
EXTRAS = extras(FEATURES)


class FeatureSelectEnv(SelectionEnv):
    """Take batches from clusters described by summaries of proxy features, until the budget is spent.

    ## Description
    The pool is split into ``n_clusters`` K-means clusters of its ``embedding`` array. Clusters sit in
    *slots* sorted by their mean ``order_by`` score (best first, then larger first), so slot ``i`` means
    the same kind of cluster on every pool and a policy trained on one pool acts on another. Each step
    takes the next ``batch_size`` examples of one cluster, in descending ``order_by`` score (default the
    alignment with the target gradient).

    ## Action Space
    ``Discrete(n_clusters)``: the slot to take the next batch from. ``action_masks()`` marks the slots with
    examples left; an action naming an exhausted slot is redirected to the lowest-index open one.

    ## Observation Space
    ``Box(-5, 5, (n_clusters * 13 + 6,), float32)``: a row of ``CLUSTER_STATS`` per slot, flattened
    slot by slot, then ``EXTRAS``. Per slot: mean and std over the examples *not yet taken* of each
    feature in ``selectgym.envs.summaries.FEATURES`` (alignment = cos(train grad, mean val grad),
    pass_rate, z-scored dpo_gap, z-scored loss, z-scored log length), the mean ``order_by`` score of the
    next batch, the slot's share of the pool and the share of it already taken (0 for an empty slot).
    Extras: the share of the budget left and a 0/1 presence flag per feature (an absent feature is a
    column of zeros). The shape depends only on ``n_clusters``, never on the pool size. Naming any other
    one-valued array of the features in ``features`` (a feature added to ``selectgym.proxies.features``, say)
    adds its z-scored mean and std per slot and its flag: ``n_clusters * (2F + 3) + 1 + F`` for F columns.

    ## Rewards
    The configured reward (``selectgym.envs.rewards``) of the batch: ``linear`` (first-order
    validation-loss drop with a redundancy penalty), ``proxy`` (validation-loss drop of the proxy after
    training on it), ``learned``, ``trained`` (terminal: paid on the last step, after fine-tuning ``mini`` on the
    whole selection) or ``none``.

    ## Starting State
    Nothing taken: every slot holds all its examples, the budget is whole. Inside a slot examples come in
    descending ``order_by`` score; only ties are ordered by ``self.np_random`` (seeded by ``reset(seed=...)``).

    ## Episode End
    Terminates when ``budget`` examples are selected; never truncates (every step takes rows).

    ## Arguments
    * ``table``, ``val_table``: the pool's and the target's ``FeatureTable`` (the target only for alignment and
      the gradient rewards).
    * ``budget``: a share of the pool in (0, 1) or a count (``selectgym.budget``).
    * ``n_clusters``: K-means clusters = actions (16); ``batch_size``: examples per step (8).
    * ``order_by``: the per-example feature that orders rows inside a cluster (``alignment``; ``-name`` for
      ascending, ``none`` for a random order).
    * ``features``: the observed features (default: every one the tables have).
    * ``reward``, ``reward_kwargs``: the step reward and its settings.
    * ``cluster_feature``, ``cluster_seed``, ``labels``: what to cluster, the K-means seed, or given labels.
    * ``train_grad``, ``val_grad``: the gradient arrays alignment and the rewards read (``grad``).

    ## Version History
    * v0: initial version.
    """

    agent_settings = (*AgentTraits.agent_settings, "batch_size")

    def __init__(self, table: FeatureTable, val_table: FeatureTable | None = None, *, budget: float | int = 0.05,
                 n_clusters: int = 16, batch_size: int = 8, order_by: str = "alignment",
                 features: Sequence[str] | None = None, reward: str | StepReward = "linear",
                 reward_kwargs: dict[str, Any] | None = None, cluster_feature: str = "embedding",
                 cluster_seed: int = 0, labels: np.ndarray | None = None, train_grad: str = "grad",
                 val_grad: str = "grad") -> None:
        if batch_size < 1:
            raise SelectgymError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(table, val_table, budget=budget, n_clusters=n_clusters, order_by=order_by,
                         features=features, reward=reward, reward_kwargs=reward_kwargs,
                         cluster_feature=cluster_feature, cluster_seed=cluster_seed, labels=labels,
                         train_grad=train_grad, val_grad=val_grad)
        self.batch_size = int(batch_size)
        mean_score = np.array([self.scores[g].mean() if len(g) else -np.inf for g in self.groups])
        slot_order = np.lexsort((np.arange(self.n_clusters), -self.sizes, -mean_score))
        self.set_slots(np.argsort(slot_order)[self.slot_of_row])
        self.size_share = self.sizes / self.n_examples
        per_cluster = len(cluster_stats(self.columns))
        self.observation_space = spaces.Box(-FEATURE_BOUND, FEATURE_BOUND,
                                            (self.n_clusters * per_cluster + len(extras(self.columns)),), np.float32)
        self._stats = np.zeros((self.n_clusters, per_cluster), dtype=np.float32)
        self._initial_stats: np.ndarray | None = None
        self._suffix: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._suffix_of: list[np.ndarray] | None = None  # the ``members`` the suffix sums were built from

    def _batch_size(self, slot: int) -> int:
        return self.batch_size

    def _on_reset(self) -> None:
        # The suffix sums follow the within-cluster order: rebuilt whenever reset drew a new one (only ties do).
        if self._suffix_of is not self.members:
            self._suffix = [suffix_moments(self.x[rows]) for rows in self.members]
            self._suffix_of = self.members
        # A full cluster's summaries do not depend on the within-cluster order (ties hold equal scores), so the
        # first episode's rows serve every later one; episodes are short and resets would dominate otherwise.
        if self._initial_stats is None:
            for slot in range(self.n_clusters):
                self._on_take(slot)
            self._initial_stats = self._stats.copy()
        else:
            self._stats[:] = self._initial_stats

    def _on_take(self, slot: int) -> None:
        start, size = int(self.ptr[slot]), int(self.sizes[slot])
        row = self._stats[slot]
        row[:] = 0.0
        if start < size:
            centre, sums, squares = self._suffix[slot]
            left = size - start
            shift = sums[start] / left
            row[0:2 * len(self.columns):2] = centre + shift
            row[1:2 * len(self.columns):2] = np.sqrt(np.maximum(squares[start] / left - shift * shift, 0.0))
            batch = self.members[slot][start:start + self.batch_size]
            row[-3] = self.scores[batch].sum() / len(batch)
        row[-2] = self.size_share[slot]
        row[-1] = start / size if size else 0.0

    def _observation(self) -> np.ndarray:
        extras = np.concatenate([[1.0 - self.n_taken / self.budget], self.present]).astype(np.float32)
        return np.concatenate([self._stats.ravel(), extras])

    def observation_schema(self) -> dict[str, Any]:
        """What the observation holds, for a saved policy's sidecar."""
        return {"kind": "cluster_features", "n_clusters": self.n_clusters, "stats": list(cluster_stats(self.columns)),
                "extras": list(extras(self.columns)),
                "features": [f for f, p in zip(self.columns, self.present, strict=True) if p],
                "shape": list(self.observation_space.shape)}


def suffix_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, sums, squares): ``sums[k]`` and ``squares[k]`` add up ``values[k:] - centre`` and its square.

    The mean and std of what is left in a cluster then cost O(features) per step instead of O(cluster size);
    centring on the cluster mean keeps ``E[d^2] - E[d]^2`` from cancelling.
    """
    centre = values.mean(axis=0) if len(values) else np.zeros(values.shape[1])
    d = values - centre
    return centre, np.cumsum(d[::-1], axis=0)[::-1], np.cumsum((d * d)[::-1], axis=0)[::-1]
