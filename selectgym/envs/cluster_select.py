"""``selectgym/ClusterSelect-v0``: the paper's selection MDP over K-means clusters (arXiv 2509.25850)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from selectgym.envs.rewards import StepReward
from selectgym.envs.selection import SelectionEnv
from selectgym.proxies.table import FeatureTable


class ClusterSelectEnv(SelectionEnv):
    """Pick whole K-means clusters of the pool until the budget is spent.

    ## Description
    The pool's ``embedding`` array is split into ``n_clusters`` K-means clusters (scikit-learn, seeded by
    ``cluster_seed``). Each step adds one cluster not yet taken to the selection; the cluster that crosses
    the budget is cut so the selection holds exactly ``budget`` examples (rows ranked by ``order_by``,
    by default a random order drawn at reset). This is the paper-faithful baseline: its policy is tied to
    one pool's clustering, because the observation says nothing about what a cluster contains.

    ## Action Space
    ``Discrete(n_clusters)``: the cluster to add. ``action_masks()`` marks the clusters not yet taken; an
    action naming a taken cluster is redirected to the lowest-index open one (``info["redirected"]``).

    ## Observation Space
    ``MultiBinary(n_clusters)``: 1 for every cluster taken so far.

    ## Rewards
    The configured reward (``selectgym.envs.rewards``) of the rows added: ``linear`` (first-order
    validation-loss drop with a redundancy penalty), ``proxy`` (validation-loss drop of the proxy after
    training on them; the paper's reward), ``learned``, ``trained`` (terminal: paid on the last step, after fine-tuning
    ``mini`` on the whole selection) or ``none``.

    ## Starting State
    No cluster taken (the observation is all zeros). Rows inside a cluster are ranked by ``order_by``; a random
    order (the default ``none``) is drawn from ``self.np_random`` at ``reset(seed=...)``.

    ## Episode End
    Terminates when ``budget`` examples are selected; never truncates (every step adds rows).

    ## Arguments
    * ``table``, ``val_table``: the pool's and the target's ``FeatureTable``.
    * ``budget``: a share of the pool in (0, 1) or a count (``selectgym.budget``).
    * ``n_clusters``: K-means clusters = actions (64).
    * ``order_by``: the feature that ranks rows inside the cluster that crosses the budget (``none``: random).
    * ``features``, ``train_grad``, ``val_grad``: the per-example features computed for ``order_by`` and the
      rewards.
    * ``reward``, ``reward_kwargs``: the step reward (the paper's is ``proxy``) and its settings.
    * ``cluster_feature``, ``cluster_seed``, ``labels``: what to cluster, the K-means seed, or given labels.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, table: FeatureTable, val_table: FeatureTable | None = None, *, budget: float | int = 0.05,
                 n_clusters: int = 64, order_by: str = "none", features: Sequence[str] | None = None,
                 reward: str | StepReward = "linear", reward_kwargs: dict[str, Any] | None = None,
                 cluster_feature: str = "embedding", cluster_seed: int = 0, labels: np.ndarray | None = None,
                 train_grad: str = "grad", val_grad: str = "grad") -> None:
        super().__init__(table, val_table, budget=budget, n_clusters=n_clusters, order_by=order_by,
                         features=features, reward=reward, reward_kwargs=reward_kwargs,
                         cluster_feature=cluster_feature, cluster_seed=cluster_seed, labels=labels,
                         train_grad=train_grad, val_grad=val_grad)
        self.observation_space = spaces.MultiBinary(self.n_clusters)

    def _batch_size(self, slot: int) -> int:
        return int(self.sizes[slot])

    def _observation(self) -> np.ndarray:
        return (self.ptr > 0).astype(np.int8)

    def observation_schema(self) -> dict[str, Any]:
        """What the observation holds, for a saved policy's sidecar."""
        return {"kind": "cluster_mask", "n_clusters": self.n_clusters, "shape": [self.n_clusters]}
