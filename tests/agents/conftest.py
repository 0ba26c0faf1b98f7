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
