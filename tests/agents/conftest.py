"""Synthetic tables and briefly trained policies shared by the agent tests."""

from __future__ import annotations

import pytest

from selectgym.agents import AgentConfig, train_agent
from tests.envs.synthetic import synthetic_tables

QUICK = {"budget": 30, "n_clusters": 8, "batch_size": 5, "progress_bar": False, "eval_freq": 0}


@pytest.fixture(scope="module")
def tables():
    return synthetic_tables()


@pytest.fixture(scope="module")
def ppo_policy(tables, tmp_path_factory):
    """A PPO policy trained for 4k steps on the synthetic pool, saved with its sidecar."""
    path = tmp_path_factory.mktemp("ppo") / "policy.zip"
    model = train_agent(AgentConfig(timesteps=4096, **QUICK), *tables, out=path,
                        feature_config={"proj_dim": 16, "seed": 0})
    return path, model


def suite_tables(suite, seed: int):
    """Feature tables for a built-in suite's SFT pool without the proxy pipeline: embeddings cluster by task,
    gradients of clean on-target examples point along the validation gradient, the rest are noise."""
    import numpy as np

    from selectgym.data.io import load_pool
    from selectgym.proxies.table import FeatureTable

    pool, val_pool = load_pool(suite / "sft.jsonl"), load_pool(suite / "validation.jsonl")
    rng = np.random.default_rng(seed)
    tasks = sorted({ex.meta["task"] for ex in pool})
    task = np.array([tasks.index(ex.meta["task"]) for ex in pool])
    useful = np.array([bool(ex.meta.get("useful")) for ex in pool])
    target = np.eye(16)[0]
    grad = rng.normal(size=(len(pool), 16)) * 0.3 + np.where(useful[:, None], target, -0.3 * target)
    train = FeatureTable([ex.id for ex in pool], {
        "embedding": np.eye(len(tasks))[task] * 3 + useful[:, None] + rng.normal(size=(len(pool), len(tasks))) * 0.1,
        "grad": grad, "loss": rng.uniform(0.5, 3, len(pool)), "length": rng.integers(5, 200, len(pool)) * 1.0})
    val = FeatureTable([ex.id for ex in val_pool], {"grad": target + rng.normal(size=(len(val_pool), 16)) * 0.05})
    return train, val, useful


@pytest.fixture(scope="module")
def second_suite(tmp_path_factory):
    from selectgym.data.suite import SuiteConfig, make_suite

    out = tmp_path_factory.mktemp("suite_b")
    make_suite(out, SuiteConfig(seed=1, size=160, validation_size=16))
    return out
