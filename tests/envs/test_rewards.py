"""Rewards: the linear formula on hand-computed numbers, and the proxy reward really training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from selectgym.envs.rewards import LinearReward, ProxyReward, make_reward
from selectgym.errors import SelectgymError
from selectgym.proxies.lora import lora_parameters
from selectgym.proxies.table import FeatureTable


@pytest.fixture()
def linear():
    train = FeatureTable(["a", "b", "c", "d"], {"grad": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])})
    val = FeatureTable(["v1", "v2"], {"grad": np.array([[2.0, 0.0], [0.0, 2.0]])})  # mean g_V = (1, 1)
    return LinearReward(train, val, lr=0.1, redundancy=0.5, normalise=False)


def test_normalised_linear_reward_measures_direction_not_norm():
    # a: long gradient along x; b: short gradient along the target (1, 1)/sqrt(2)
    train = FeatureTable(["a", "b"], {"grad": np.array([[10.0, 0.0], [0.1, 0.1]])})
    val = FeatureTable(["v"], {"grad": np.array([[3.0, 3.0]])})
    raw = LinearReward(train, val, lr=1.0, redundancy=0.0, normalise=False)
    unit = LinearReward(train, val, lr=1.0, redundancy=0.0)
    assert raw.step(np.array([0])) == pytest.approx(30.0) and raw.step(np.array([1])) == pytest.approx(0.6)
    # unit vectors: cos(a, target) = 1/sqrt(2), cos(b, target) = 1
    assert unit.step(np.array([0])) == pytest.approx(1 / np.sqrt(2)) and unit.step(np.array([1])) == pytest.approx(1.0)


def test_linear_reward_by_hand(linear):
    # batch {a, b}: g_B = (.5, .5), <g_B, g_V> = 1, nothing taken yet -> 0.1 * 1
    assert linear.step(np.array([0, 1])) == pytest.approx(0.1)
    # batch {c}: <g_B, g_V> = 2; cos(g_B, g_T) = 1 -> penalty .5 * .1 * |g_B| |g_V| = .5 * .1 * 2 = .1
    assert linear.step(np.array([2])) == pytest.approx(0.2 - 0.1)
    # batch {d}: <g_B, g_V> = -1 and it opposes what is taken (cos < 0), so no penalty
    assert linear.step(np.array([3])) == pytest.approx(-0.1)


def test_linear_reward_partial_overlap_and_reset(linear):
    assert linear.step(np.array([0])) == pytest.approx(0.1)
    # g_B = (1, 1), g_T = (1, 0): cos = 1/sqrt(2) -> penalty .5 * .1 * sqrt2 * sqrt2 / sqrt2
    assert linear.step(np.array([2])) == pytest.approx(0.2 - 0.1 / math.sqrt(2))
    linear.reset()
    assert linear.step(np.array([2])) == pytest.approx(0.2)


def test_vector_env_copies_share_one_prepared_gradient_array():
    """Eight env copies over one table hold one (N, d) array, not eight; a new table gets its own."""
    from selectgym.agents import AgentConfig
    from selectgym.agents.train import make_vec_env
    from tests.envs.synthetic import synthetic_tables

    train, val = synthetic_tables()
    cfg = AgentConfig(timesteps=64, budget=40, n_clusters=8, batch_size=5, progress_bar=False, eval_freq=0)
    venv = make_vec_env(cfg, train, val, reward="linear", reward_kwargs={}, n_envs=8, training=True)
    grads = [env.unwrapped.reward.grads for env in venv.unwrapped.envs]
    assert all(g is grads[0] for g in grads)
    np.testing.assert_allclose(np.linalg.norm(grads[0], axis=1), 1.0)
    other = LinearReward(train.subset(range(len(train))), val)
    assert other.grads is not grads[0]
    np.testing.assert_array_equal(other.grads, grads[0])


def test_make_reward_checks_names_and_settings(linear):
    train = FeatureTable(["a"], {"grad": np.ones((1, 2))})
    val = FeatureTable(["v"], {"grad": np.ones((1, 3))})
    assert make_reward(linear, train, val) is linear
    with pytest.raises(SelectgymError, match="unknown reward 'gold'"):
        make_reward("gold", train, val)
    with pytest.raises(SelectgymError, match=r"reward 'linear' has no option\(s\) alpha; it takes: lr, redundancy"):
        make_reward("linear", train, train, alpha=1)
    with pytest.raises(SelectgymError, match="dimension 2 but validation 'grad' has 3"):
        make_reward("linear", train, val)
    with pytest.raises(SelectgymError, match="needs validation gradients"):
        make_reward("linear", train, None)


@pytest.fixture(scope="module")
def val_pool(suite_dir):
    from selectgym.data.io import load_pool

    return load_pool(suite_dir / "validation.jsonl")


def test_proxy_reward_is_positive_on_the_validation_examples_and_resets(val_pool):
    table = FeatureTable([ex.id for ex in val_pool], {})
    reward = ProxyReward(table, None, pool=val_pool, val_pool=val_pool, lr=5e-3, steps=3, val_subsample=8, seed=0)
    initial = [p.detach().clone() for p in reward.params]
    rows = np.arange(len(val_pool))
    first = reward.step(rows)
    assert first > 0
    moved = [not np.allclose(p.detach().numpy(), p0.numpy())
             for p, p0 in zip(reward.params, initial, strict=True)]
    assert any(moved)
    base = [p for n, p in reward.model.named_parameters() if "lora_" not in n]
    assert not any(p.requires_grad for p in base)
    second = reward.step(rows)  # the val loss keeps falling on its own examples
    assert second > 0
    reward.reset()
    for p, p0 in zip(reward.params, initial, strict=True):
        np.testing.assert_array_equal(p.detach().numpy(), p0.numpy())
    assert reward.step(rows) == pytest.approx(first, rel=1e-5)


def test_trained_reward_pays_at_the_end_and_starts_each_episode_from_the_same_adapter(val_pool):
    table = FeatureTable([ex.id for ex in val_pool], {})
    reward = make_reward("trained", table, None, pool=val_pool, val_pool=val_pool, model="tiny", lr=5e-3,
                         epochs=4, batch_size=4, score="loss", seed=0)
    initial = [p.detach().clone() for p in reward.params]
    rows = np.arange(len(val_pool))
    assert reward.step(rows[:4]) == 0.0  # steps earn nothing: the selection is scored once, whole
    first = reward.finish(rows)
    assert first > 0  # trained on the very problems it is scored on, the loss of their answers falls
    assert any(not np.allclose(p.detach().numpy(), p0.numpy()) for p, p0 in zip(reward.params, initial, strict=True))
    reward.reset()
    assert reward.finish(rows) == pytest.approx(first, rel=1e-5)  # the same adapter and order every episode
    assert reward.finish(rows[::-1]) == pytest.approx(first, rel=1e-5)  # a set: the picking order does not count
    assert reward.finish(rows[:0]) == 0.0
    assert reward.describe()["score"] == "loss"


def test_trained_reward_with_repeats_averages_runs_from_other_adapters_and_orders(val_pool):
    table = FeatureTable([ex.id for ex in val_pool], {})
    settings = {"pool": val_pool, "val_pool": val_pool, "model": "tiny", "lr": 5e-3, "epochs": 2, "batch_size": 4,
                "score": "loss"}
    rows = np.arange(len(val_pool))
    one = make_reward("trained", table, None, seed=3, **settings)
    three = make_reward("trained", table, None, seed=3, repeats=3, **settings)
    assert three.baseline == pytest.approx(one.baseline)  # every initial adapter is the base model (B = 0) ...
    a0, a1 = (dict(zip([n for n, _ in lora_parameters(three.model)], init, strict=True)) for init in three.initials[:2])
    assert not np.allclose(a0[next(n for n in a0 if "lora_A" in n)], a1[next(n for n in a1 if "lora_A" in n)])
    assert all(not v.any() for n, v in a1.items() if "lora_B" in n)  # ... with its own draw of A
    gains = []
    for repeat in range(3):
        three.train_on(rows, repeat)
        gains.append(three._score() - three.baseline)
    assert gains[0] == pytest.approx(one.finish(rows), rel=1e-5)  # the first repeat is the single run
    assert len({round(g, 6) for g in gains}) == 3
    assert three.finish(rows) == pytest.approx(np.mean(gains), rel=1e-5)
    assert three.describe()["repeats"] == 3
    with pytest.raises(SelectgymError, match="repeats >= 1"):
        make_reward("trained", table, None, seed=3, repeats=0, **settings)


def test_trained_reward_scores_accuracy_against_the_untrained_model(val_pool, monkeypatch):
    table = FeatureTable([ex.id for ex in val_pool], {})
    reward = make_reward("trained", table, None, pool=val_pool, val_pool=val_pool, model="tiny", epochs=1, seed=0)
    # accuracy is the verifier's share of greedy answers; with every answer judged right it is 1, and the reward
    # is the gain over the untrained model's accuracy, measured once when the reward was made
    monkeypatch.setattr("selectgym.data.verify.score", lambda ex, completion: 1.0)
    assert reward.finish(np.arange(4)) == pytest.approx(1.0 - reward.baseline)
    with pytest.raises(SelectgymError, match="score must be one of"):
        make_reward("trained", table, None, pool=val_pool, val_pool=val_pool, model="tiny", score="bleu")
    with pytest.raises(SelectgymError, match="not in the given pool"):
        make_reward("trained", FeatureTable(["nope"], {}), None, pool=val_pool, val_pool=val_pool, model="tiny")


def test_an_env_adds_the_terminal_reward_to_its_last_step():
    from selectgym.envs.rewards import StepReward

    class Terminal(StepReward):
        name = "terminal"

        def __init__(self):
            self.finished = []

        def reset(self):
            pass

        def step(self, rows):
            return 0.0

        def finish(self, rows):
            self.finished.append(sorted(int(r) for r in rows))
            return 10.0

    from tests.envs.synthetic import synthetic_tables

    train, val = synthetic_tables(seed=0)[:2]
    import gymnasium as gym

    import selectgym.envs  # noqa: F401  (registers the envs)

    for env_id in ("selectgym/ExampleSelect-v0", "selectgym/FeatureSelect-v0"):
        terminal = Terminal()
        env = gym.make(env_id, table=train, val_table=val, budget=6, reward=terminal).unwrapped
        env.reset(seed=0)
        rewards, done = [], False
        while not done:
            _, r, done, _, _ = env.step(0)
            rewards.append(r)
        assert rewards[-1] == 10.0 and sum(rewards[:-1]) == 0.0
        assert terminal.finished == [sorted(int(r) for r in env.selected_rows())]
