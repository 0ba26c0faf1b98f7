"""ExampleSelect: candidates described one by one, rewards per example, several pools; the learned reward."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import selectgym.envs  # noqa: F401  (registers the ids)
from selectgym.envs.example_select import candidate_columns
from selectgym.envs.rewards import LearnedReward, LinearReward
from selectgym.envs.summaries import example_matrix
from selectgym.errors import SelectgymError
from tests.envs.synthetic import synthetic_tables


def make(tables, **kwargs):
    train, val = tables
    settings = {"budget": 12, "chunk": 8, "reward": "linear", **kwargs}
    return gym.make("selectgym/ExampleSelect-v0", table=train, val_table=val, **settings).unwrapped


def test_observation_rows_are_the_candidates_features(tables):
    env = make(tables)
    obs, _ = env.reset(seed=0)
    columns = candidate_columns(None)
    assert obs.shape == (8 * len(columns),) == env.observation_space.shape
    rows = obs.reshape(8, len(columns))
    x, _, names = example_matrix(*tables)
    assert names == columns[:len(names)]
    np.testing.assert_allclose(rows[:, :len(names)], x[env.candidates], rtol=1e-6, atol=1e-6)
    assert (rows[:, columns.index("redundancy")] == 0).all()  # nothing taken yet
    assert (rows[:, columns.index("budget_left")] == 1).all()
    assert len(set(env.candidates.tolist())) == 8


def test_step_takes_the_candidate_and_pays_the_linear_reward(tables):
    env = make(tables)
    reference = LinearReward(*tables)
    env.reset(seed=1)
    taken, total = [], 0.0
    for i in range(12):
        row = int(env.candidates[i % 8])
        assert row not in taken  # candidates are open examples only
        _, reward, terminated, _, _ = env.step(i % 8)
        assert reward == pytest.approx(reference.step(np.array([row])))
        taken.append(row)
        total += reward
        assert terminated == (i == 11)
    assert env.selected_rows().tolist() == taken
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    emb = np.asarray(tables[0].get("embedding"))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    env.reset(seed=2)
    first = int(env.candidates[0])
    env.step(0)
    rows = env.candidate_matrix(np.arange(len(emb)))
    np.testing.assert_allclose(rows[:, candidate_columns(None).index("redundancy")], np.maximum(0, unit @ unit[first]),
                               atol=1e-5)


def test_resets_draw_pools_and_budgets_follow_the_pool(tables):
    other = synthetic_tables(per_group=60, seed=5, prefix="o")
    env = make(tables, budget=0.05, pools=[other])
    sizes = set()
    for seed in range(12):
        env.reset(seed=seed)
        sizes.add((env.n_examples, env.budget))
    assert sizes == {(240, 12), (480, 24)}


def test_too_small_a_pool_and_bad_chunk_are_one_line_errors(tables):
    with pytest.raises(SelectgymError, match="chunk"):
        make(tables, chunk=0)
    with pytest.raises(SelectgymError, match="too small"):
        make(tables, budget=240)


def test_learned_reward_is_the_weighted_sum_of_the_example_columns(tables):
    train, val = tables
    x, _, names = example_matrix(train, val, ["alignment", "loss"])
    reward = LearnedReward(train, val, weights={"alignment": 2.0, "loss": -0.5}, bias=0.25)
    rows = np.array([3, 17])
    expected = np.mean(2.0 * x[rows, names.index("alignment")] - 0.5 * x[rows, names.index("loss")] + 0.25)
    assert reward.step(rows) == pytest.approx(expected)
    with pytest.raises(SelectgymError, match="weights"):
        LearnedReward(train, val, weights={})
    with pytest.raises(SelectgymError, match="nonsense"):
        LearnedReward(train, val, weights={"nonsense": 1.0})


def test_learned_reward_on_alignment_z_alone_reads_the_alignment(tables):
    train, val = tables
    x, _, names = example_matrix(train, val, ["alignment"])
    reward = LearnedReward(train, val, weights={"alignment_z": 1.0})
    assert np.abs(reward.values).max() > 0  # not a column of zeros
    np.testing.assert_allclose(reward.values, x[:, names.index("alignment_z")])


def test_a_pool_can_bring_its_own_reward_settings(tables):
    # a reward that trains on texts needs each pool's own; a fourth item of a pool entry gives them
    train, val = tables
    other, other_val = synthetic_tables(seed=1, prefix="other")
    env = make(tables, reward="learned", reward_kwargs={"weights": {"alignment": 1.0}},
               pools=[(other, other_val, None, {"weights": {"alignment": -2.0}, "bias": 1.0})])
    first, second = env.rewards
    assert first.settings == {"weights": {"alignment": 1.0}, "bias": 0.0}
    assert second.settings == {"weights": {"alignment": -2.0}, "bias": 1.0}
    x, _, names = example_matrix(other, other_val, ["alignment"])
    np.testing.assert_allclose(second.values, -2.0 * x[:, names.index("alignment")] + 1.0)
