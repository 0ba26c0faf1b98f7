"""Applying saved policies: to a differently seeded pool of another size, and as the ``policy`` selector."""

from __future__ import annotations

import numpy as np
import pytest

from selectgym.agents import AgentConfig, apply_policy, train_agent
from selectgym.agents.selector import PolicySelector
from selectgym.errors import SelectgymError
from tests.agents.conftest import suite_tables


@pytest.fixture(scope="module")
def suite_policy(suite_dir, tmp_path_factory):
    train, val, _ = suite_tables(suite_dir, seed=0)
    path = tmp_path_factory.mktemp("suite_policy") / "policy.zip"
    cfg = AgentConfig(timesteps=4096, budget=24, n_clusters=8, batch_size=4, progress_bar=False, eval_freq=0)
    train_agent(cfg, train, val, out=path)
    return path


def test_policy_transfers_to_another_pool(suite_policy, suite_dir, second_suite):
    train, val, useful = suite_tables(second_suite, seed=1)
    assert len(train) != len(suite_tables(suite_dir, seed=0)[0])
    selection = apply_policy(suite_policy, budget=30, seed=0, table=train, val_table=val)
    assert len(selection.ids) == len(set(selection.ids)) == 30
    assert set(selection.ids) <= set(train.ids)
    np.testing.assert_array_equal(selection.scores, np.arange(30, 0, -1))
    assert selection.method == "policy" and selection.info["algorithm"] == "ppo"
    picked_useful = np.mean([useful[train.ids.index(i)] for i in selection.ids])
    assert picked_useful > 2 * useful.mean()  # the policy's clusters are the clean on-target ones
    again = apply_policy(suite_policy, budget=30, seed=0, table=train, val_table=val)
    assert again.ids == selection.ids


def test_policy_selector_matches_apply_policy(suite_policy, second_suite):
    train, val, _ = suite_tables(second_suite, seed=1)
    selector = PolicySelector(policy_path=suite_policy)
    chosen = selector.select(train, val, budget=0.1, seed=3)
    assert chosen.ids == apply_policy(suite_policy, budget=16, seed=3, table=train, val_table=val).ids
    scores = selector.score(train, val, np.random.default_rng(0))
    assert sorted(scores.tolist()) == list(range(1, len(train) + 1))


def test_apply_needs_features_or_a_pool(suite_policy):
    with pytest.raises(SelectgymError, match="give a pool file"):
        apply_policy(suite_policy, budget=10)
