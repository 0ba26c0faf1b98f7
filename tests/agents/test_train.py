"""Training agents: they learn the synthetic pool's best cluster, are seeded, and leave global RNGs alone."""

from __future__ import annotations

import numpy as np
import pytest

from selectgym.agents import AgentConfig, load_policy, train_agent
from selectgym.envs import CLUSTER_SELECT, FEATURE_SELECT
from selectgym.errors import SelectgymError
from tests.agents.conftest import QUICK


def mean_return(env, choose, episodes=5, seed=100):
    totals = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total, done = 0.0, False
        while not done:
            obs, reward, done, _, _ = env.step(choose(obs, env.action_masks()))
            total += reward
        totals.append(total)
    return float(np.mean(totals))


def best_group_first(env):
    """Whichever open cluster holds the synthetic best group (rows 90..119), else the first open one."""
    def choose(obs, mask):
        holds_best = [bool(m) and len(rows) and 90 <= rows[0] < 120
                      for m, rows in zip(mask, env.members, strict=True)]
        return int(np.argmax(holds_best)) if any(holds_best) else int(np.argmax(mask))
    return choose


def random_choice(seed):
    rng = np.random.default_rng(seed)
    return lambda obs, mask: int(rng.choice(np.flatnonzero(mask)))


@pytest.mark.parametrize(("algo", "env_id"), [("ppo", FEATURE_SELECT), ("maskable_ppo", CLUSTER_SELECT)])
def test_trained_agent_beats_random(tables, tmp_path, algo, env_id):
    path = tmp_path / "policy.zip"
    train_agent(AgentConfig(algo=algo, env_id=env_id, timesteps=4096, **QUICK), *tables, out=path)
    policy = load_policy(path)
    env = policy.make_env(*tables, budget=30, reward="linear")
    trained = mean_return(env, policy.act)
    baseline = mean_return(env, random_choice(0))
    oracle = mean_return(env, best_group_first(env))
    assert trained > baseline + 0.5
    assert trained >= 0.9 * oracle


def test_same_seed_same_agent(tables):
    cfg = AgentConfig(timesteps=1024, n_steps=64, minibatch_size=128, **QUICK)
    first, second = train_agent(cfg, *tables), train_agent(cfg, *tables)
    obs = np.random.default_rng(0).uniform(-1, 1, (16, *first.observation_space.shape)).astype(np.float32)
    np.testing.assert_array_equal(first.predict(obs, deterministic=True)[0], second.predict(obs, deterministic=True)[0])
    for a, b in zip(first.policy.parameters(), second.policy.parameters(), strict=True):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_training_leaves_global_rngs_alone(tables):
    import random

    import torch

    states = random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state().clone()
    train_agent(AgentConfig(timesteps=256, n_steps=32, minibatch_size=64, **QUICK), *tables)
    assert random.getstate() == states[0]
    np.testing.assert_array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.random.get_rng_state(), states[2])


def test_eval_and_checkpoints_are_written(tables, tmp_path):
    cfg = AgentConfig(timesteps=1024, n_steps=64, minibatch_size=128, **{**QUICK, "eval_freq": 512},
                      checkpoint_freq=512, log_dir=str(tmp_path / "run"))
    train_agent(cfg, *tables, eval_table=tables[0], eval_val_table=tables[1])
    evaluations = np.load(tmp_path / "run" / "eval" / "evaluations.npz")
    assert evaluations["timesteps"].tolist() == [512, 1024]
    assert list((tmp_path / "run" / "logs").glob("events.out.tfevents.*"))
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert saved == ["policy_1024.zip", "policy_512.zip"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"algo": "sac"}, "algo 'sac' is unknown"),
    ({"minibatch_size": 4096, "n_steps": 64}, r"lower minibatch_size or raise n_steps"),
    ({"reward": "gold"}, "reward 'gold' is unknown"),
    ({"gamma": 0.0}, r"gamma must lie in \(0, 1\]"),
    ({"observe": []}, r"observe is empty"),
    ({"alignment_target": "median"}, r"alignment_target 'median' is unknown"),
    ({"alignment_target": "unit_mean"}, r"alignment_target is a setting of selectgym/ExampleSelect-v0"),
])
def test_config_checks(kwargs, message):
    with pytest.raises(SelectgymError, match=message):
        AgentConfig(**kwargs)


def test_config_defaults_per_algorithm():
    assert AgentConfig(algo="a2c").algo_settings()["n_steps"] == 5
    ppo = AgentConfig().algo_settings()
    assert (ppo["n_steps"], ppo["batch_size"], ppo["n_epochs"]) == (256, 512, 4)
    assert AgentConfig(algo="dqn", algo_kwargs={"buffer_size": 10}).algo_settings()["buffer_size"] == 10
