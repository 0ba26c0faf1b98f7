"""Both selection envs: the Gymnasium and SB3 checkers, determinism, pickling, budget and observation contents."""

from __future__ import annotations

import importlib
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import selectgym.envs
from selectgym.envs import CLUSTER_SELECT, FEATURE_SELECT
from selectgym.envs.feature_select import CLUSTER_STATS, EXTRAS
from selectgym.envs.summaries import FEATURES
from selectgym.errors import SelectgymError
from tests.envs.synthetic import synthetic_tables

SETTINGS = {
    CLUSTER_SELECT: {"budget": 40, "n_clusters": 8},
    FEATURE_SELECT: {"budget": 40, "n_clusters": 8, "batch_size": 5},
}


def make(env_id, tables, **overrides):
    train, val = tables
    return gym.make(env_id, table=train, val_table=val, **{**SETTINGS[env_id], **overrides})


@pytest.mark.parametrize("env_id", [CLUSTER_SELECT, FEATURE_SELECT])
def test_checkers(env_id, tables):
    env = make(env_id, tables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checkers only warn; any warning is a defect here
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped)


def rollout(env, seed, steps=50):
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        out += [obs, reward, terminated, env.unwrapped.taken[-1], info["slot"]]
        if terminated or truncated:
            out.append(env.reset()[0])
    return out


@pytest.mark.parametrize("env_id", [CLUSTER_SELECT, FEATURE_SELECT])
def test_same_seed_same_rollout(env_id, tables):
    first, second = rollout(make(env_id, tables), 7), rollout(make(env_id, tables), 7)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = rollout(make(env_id, tables), 8)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=False))


@pytest.mark.parametrize("env_id", [CLUSTER_SELECT, FEATURE_SELECT])
def test_pickle_round_trip(env_id, tables):
    env = make(env_id, tables, budget=200)
    env.reset(seed=3)
    env.step(1)
    clone = pickle.loads(pickle.dumps(env))
    for action in (2, 0, 5):
        a, b = env.step(action), clone.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:3] == b[1:3]


def test_registration_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(selectgym.envs)
    assert gym.spec(FEATURE_SELECT).entry_point == "selectgym.envs.feature_select:FeatureSelectEnv"
    assert gym.spec(CLUSTER_SELECT).entry_point == "selectgym.envs.cluster_select:ClusterSelectEnv"


@pytest.mark.parametrize("env_id", [CLUSTER_SELECT, FEATURE_SELECT])
def test_episode_takes_exactly_the_budget_without_repeats(env_id, tables):
    env = make(env_id, tables, budget=37).unwrapped
    env.reset(seed=0)
    terminated, steps = False, 0
    while not terminated:
        mask = env.action_masks()
        _, _, terminated, _, info = env.step(int(np.flatnonzero(mask)[-1]))
        assert not info["redirected"]
        steps += 1
    rows = env.selected_rows()
    assert len(rows) == 37 and len(set(rows.tolist())) == 37
    expected_steps = 2 if env_id == CLUSTER_SELECT else 8  # clusters of 30 -> 30 + 7; batches of 5 -> 7x5 + 2
    assert steps == expected_steps


def test_step_after_the_end_needs_a_reset(tables):
    env = make(CLUSTER_SELECT, tables, budget=20).unwrapped
    env.reset(seed=0)
    assert env.step(0)[2]
    with pytest.raises(gym.error.ResetNeeded):
        env.step(1)


def test_exhausted_cluster_is_redirected(tables):
    env = make(CLUSTER_SELECT, tables).unwrapped
    env.reset(seed=0)
    first = env.step(4)[-1]
    assert first["slot"] == 4 and not env.action_masks()[4]
    obs, _, _, _, info = env.step(4)
    assert info["redirected"] and info["slot"] == 0
    np.testing.assert_array_equal(obs, [1, 0, 0, 0, 1, 0, 0, 0])


def test_cluster_rows_follow_order_by_score(tables):
    train, val = tables
    env = make(FEATURE_SELECT, tables).unwrapped
    env.reset(seed=0)
    env.step(0)
    rows = env.taken[-1]
    align = env.x[:, FEATURES.index("alignment")]
    cluster = env.members[0]
    np.testing.assert_array_equal(np.sort(align[rows])[::-1], align[rows])
    assert align[rows].min() >= align[cluster[5:]].max()
    # slot 0 is the cluster with the highest mean alignment: the synthetic "best" group 3 (rows 90..119)
    assert set(cluster.tolist()) == set(range(90, 120))


def test_feature_observation_matches_hand_summaries(tables):
    env = make(FEATURE_SELECT, tables).unwrapped
    obs, _ = env.reset(seed=0)
    env.step(2)
    obs, *_ = env.step(2)
    k, s = env.n_clusters, len(CLUSTER_STATS)
    stats, extras = obs[:k * s].reshape(k, s), obs[k * s:]
    rest = env.members[2][10:]
    for j, name in enumerate(FEATURES):
        np.testing.assert_allclose(stats[2, CLUSTER_STATS.index(f"{name}_mean")], env.x[rest, j].mean(), rtol=1e-5)
        np.testing.assert_allclose(stats[2, CLUSTER_STATS.index(f"{name}_std")], env.x[rest, j].std(), rtol=1e-5)
    np.testing.assert_allclose(stats[2, CLUSTER_STATS.index("next_score")], env.scores[rest[:5]].mean(), rtol=1e-5)
    np.testing.assert_allclose(stats[2, CLUSTER_STATS.index("taken_share")], 10 / 30)
    np.testing.assert_allclose(stats[:, CLUSTER_STATS.index("size_share")], 30 / 240)
    np.testing.assert_allclose(extras[EXTRAS.index("budget_left")], 1 - 10 / 40)
    np.testing.assert_array_equal(extras[1:], 1.0)


@pytest.mark.parametrize("order_by", ["alignment", "none"])
def test_running_summaries_match_a_direct_recomputation(tables, order_by):
    """The O(features) suffix-sum summaries against mean/std recomputed over what is left, step by step,
    through clusters emptied to the last row, and across resets that reshuffle tied rows ("none")."""
    env = make(FEATURE_SELECT, tables, budget=240, order_by=order_by).unwrapped
    rng = np.random.default_rng(0)
    k, s = env.n_clusters, len(CLUSTER_STATS)
    means = [CLUSTER_STATS.index(f"{name}_mean") for name in FEATURES]
    stds = [CLUSTER_STATS.index(f"{name}_std") for name in FEATURES]
    orders = set()
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        orders.add(tuple(env.members[0].tolist()))
        done = False
        while not done:
            open_slots = np.flatnonzero(env.action_masks())
            obs, _, done, _, _ = env.step(int(open_slots[rng.integers(len(open_slots))]))
            stats = obs[:k * s].reshape(k, s)
            for slot in range(k):
                rest = env.members[slot][env.ptr[slot]:]
                if len(rest):
                    np.testing.assert_allclose(stats[slot, means], env.x[rest].mean(axis=0), rtol=1e-5, atol=1e-6)
                    np.testing.assert_allclose(stats[slot, stds], env.x[rest].std(axis=0), rtol=1e-5, atol=1e-6)
                else:
                    np.testing.assert_array_equal(stats[slot, means + stds], 0.0)
    assert len(orders) == (2 if order_by == "none" else 1)


def test_observation_shape_does_not_depend_on_pool_size():
    small, small_val = synthetic_tables(per_group=12, seed=1)
    big, big_val = synthetic_tables(per_group=50, seed=2)
    spaces = [gym.make(FEATURE_SELECT, table=t, val_table=v, budget=0.1, n_clusters=8).observation_space
              for t, v in ((small, small_val), (big, big_val))]
    assert spaces[0] == spaces[1]


def test_absent_features_are_zero_with_a_flag(tables):
    train, val = tables
    lean = train.subset(range(len(train)))
    del lean.arrays["dpo_gap"], lean.arrays["pass_rate"]
    env = gym.make(FEATURE_SELECT, table=lean, val_table=val, budget=40, n_clusters=8).unwrapped
    obs, _ = env.reset(seed=0)
    k, s = env.n_clusters, len(CLUSTER_STATS)
    stats, extras = obs[:k * s].reshape(k, s), obs[k * s:]
    for name in ("dpo_gap", "pass_rate"):
        assert extras[EXTRAS.index(f"has_{name}")] == 0
        assert not stats[:, CLUSTER_STATS.index(f"{name}_mean")].any()
    assert extras[EXTRAS.index("has_loss")] == 1
    assert env.observation_schema()["features"] == ["alignment", "loss", "length"]


def test_bad_settings_are_one_line_errors(tables):
    train, val = tables
    with pytest.raises(SelectgymError, match="cannot make 500 clusters from 240"):
        gym.make(FEATURE_SELECT, table=train, val_table=val, n_clusters=500)
    with pytest.raises(SelectgymError, match="order_by 'alignment' needs"):
        gym.make(FEATURE_SELECT, table=train, val_table=None, reward="none")
    with pytest.raises(SelectgymError, match="order_by 'vibes' is not one of"):
        gym.make(FEATURE_SELECT, table=train, val_table=val, order_by="vibes")
    with pytest.raises(SelectgymError, match="budget 999 is above the pool size"):
        gym.make(FEATURE_SELECT, table=train, val_table=val, budget=999)


def test_an_env_observes_any_scalar_feature_by_name():
    """A feature added to the registry (here: an array the table holds) is observed by naming it, no code change."""
    from selectgym.envs.feature_select import cluster_stats
    from selectgym.proxies.table import FeatureTable

    train, val = synthetic_tables()
    chars = np.random.default_rng(0).uniform(1, 100, len(train))
    table = FeatureTable(train.ids, {**train.arrays, "chars": chars}, train.meta)
    plain = gym.make("selectgym/FeatureSelect-v0", table=table, val_table=val, budget=30, n_clusters=8).unwrapped
    assert "chars" not in plain.observation_schema()["features"]  # built-ins only, unless asked
    observed = ["alignment", "loss", "chars"]
    env = gym.make("selectgym/FeatureSelect-v0", table=table, val_table=val, budget=30, n_clusters=8,
                   features=observed).unwrapped
    schema = env.observation_schema()
    assert schema["features"] == observed and "chars_mean" in schema["stats"]
    assert env.observation_space.shape == (8 * len(cluster_stats([*plain.columns, "chars"])) + 1 + 6,)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    column = schema["stats"].index("chars_mean")
    moved = FeatureTable(table.ids, {**table.arrays, "chars": chars[::-1].copy()}, table.meta)
    other = gym.make("selectgym/FeatureSelect-v0", table=moved, val_table=val, budget=30, n_clusters=8,
                     features=observed).unwrapped
    per_slot = len(schema["stats"])
    a, b = obs[:8 * per_slot].reshape(8, per_slot), other.reset(seed=0)[0][:8 * per_slot].reshape(8, per_slot)
    assert not np.allclose(a[:, column], b[:, column])  # the observation follows the new feature's values
    with pytest.raises(SelectgymError, match=r"features lack \['vibes'\]"):
        gym.make("selectgym/FeatureSelect-v0", table=table, val_table=val, budget=30, n_clusters=8,
                 features=["vibes"])
