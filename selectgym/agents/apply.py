"""Apply a saved policy to a pool: features (computed if needed), a deterministic rollout, the selected ids."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from selectgym.agents.policy_file import SavedPolicy, load_policy
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable
from selectgym.selectors.base import Selection
from selectgym.utils import cache_dir, stable_hash

log = logging.getLogger(__name__)


def features_for(policy: SavedPolicy, pool_path: str | Path | None, val_path: str | Path | None,
                 features_dir: str | Path | None) -> tuple[FeatureTable, FeatureTable | None]:
    """Load features from ``features_dir``, or compute them for ``pool_path`` with the policy's feature config."""
    if features_dir is None and pool_path is None:
        raise SelectgymError("give a pool file (and its validation file) or a features folder to apply a policy to")
    from selectgym.proxies.pipeline import FeatureConfig, compute_features, load_features

    if pool_path is None:
        train, val, _ = load_features(features_dir)
        return train, val
    config = policy.sidecar.get("feature_config")
    if not config:
        raise SelectgymError(f"policy {policy.path.name} does not record a feature config; compute features with "
                             f"`selectgym features` and pass their folder")
    if features_dir is None:
        key = stable_hash({"pool": str(Path(pool_path).resolve()), "val": str(Path(val_path).resolve())
                           if val_path else None, "config": config})
        features_dir = cache_dir() / "features" / key
    compute_features(pool_path, val_path, FeatureConfig(**config), features_dir, progress=False)
    train, val, _ = load_features(features_dir)
    return train, val


def rollout(policy: SavedPolicy, table: FeatureTable, val_table: FeatureTable | None, budget: float | int,
            seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """Roll the policy out greedily (best open cluster each step): table rows in selection order, clusters chosen."""
    env = policy.make_env(table, val_table, budget)
    obs, _ = env.reset(seed=seed)
    slots, terminated = [], False
    while not terminated:
        obs, _, terminated, _, info = env.step(policy.act(obs, env.action_masks()))
        slots.append(info["slot"])
    return env.selected_rows(), slots


def apply_policy(policy_path: str | Path, pool_path: str | Path | None = None, *, budget: float | int, seed: int = 0,
                 val_path: str | Path | None = None, features_dir: str | Path | None = None,
                 table: FeatureTable | None = None, val_table: FeatureTable | None = None) -> Selection:
    """Select ``budget`` examples of a pool with a saved policy; ids come back in selection order.

    Features come from ``table``/``val_table`` if given, else from ``features_dir``, else they are computed
    for ``pool_path`` (and ``val_path``) with the feature config recorded beside the policy. Scores count
    down from ``k`` (first pick) to 1; ``info`` lists the clusters chosen step by step.
    """
    policy = load_policy(policy_path)
    if table is None:
        table, val_table = features_for(policy, pool_path, val_path, features_dir)
    rows, slots = rollout(policy, table, val_table, budget, seed)
    k = len(rows)
    info: dict[str, Any] = {"policy": str(policy.path), "algorithm": policy.sidecar["algorithm"],
                            "env_id": policy.sidecar["env_id"], "clusters": slots, "seed": seed}
    return Selection([table.ids[i] for i in rows], np.arange(k, 0, -1, dtype=np.float64), "policy", None, info)
