"""Synthetic feature tables where one cluster is clearly the best data (built in milliseconds)."""

from __future__ import annotations

import numpy as np

from selectgym.proxies.table import FeatureTable


def synthetic_tables(n_groups: int = 8, per_group: int = 30, dim: int = 16, seed: int = 0, best: int = 3,
                     prefix: str = "ex") -> tuple[FeatureTable, FeatureTable]:
    """``(train, val)``: embeddings in ``n_groups`` tight groups; only group ``best`` has gradients along the
    validation gradient, half the others point against it and the rest are orthogonal noise."""
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    group = np.repeat(np.arange(n_groups), per_group)
    centers = rng.normal(size=(n_groups, 8)) * 5.0
    embedding = centers[group] + rng.normal(size=(n, 8)) * 0.1
    target = np.zeros(dim)
    target[0] = 1.0
    direction = np.zeros((n_groups, dim))
    direction[best] = target
    for g in range(n_groups):
        if g != best:
            direction[g] = -0.5 * target if g % 2 else rng.normal(size=dim) * np.eye(dim)[1 + g % (dim - 1)]
    grad = direction[group] + rng.normal(size=(n, dim)) * 0.2
    train = FeatureTable(
        [f"{prefix}{i}" for i in range(n)],
        {"embedding": embedding.astype(np.float32), "grad": grad.astype(np.float32),
         "loss": rng.uniform(0.5, 3.0, n), "length": rng.integers(5, 200, n).astype(np.float64),
         "pass_rate": rng.uniform(0, 1, n), "dpo_gap": rng.normal(size=n)},
        {"config": {"proj_dim": dim, "seed": seed}},
    )
    val_grad = target + rng.normal(size=(6, dim)) * 0.05
    val = FeatureTable([f"val{j}" for j in range(6)], {"grad": val_grad.astype(np.float32),
                                                       "pass_rate": rng.uniform(0, 1, 6)})
    return train, val
