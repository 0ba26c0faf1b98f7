"""The permutation-invariant candidate scorer: symmetric logits, trained over several pools, applied to any size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selectgym.agents import AgentConfig, train_agent
from selectgym.agents.apply import FULL_PASSES, apply_policy, greedy_in_blocks
from selectgym.agents.example_policy import CandidateScorerPolicy
from selectgym.agents.policy_file import load_policy
from selectgym.envs.summaries import example_matrix
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable
from tests.envs.synthetic import synthetic_tables

QUICK = {"env_id": "selectgym/ExampleSelect-v0", "budget": 12, "chunk": 8, "n_envs": 4, "n_steps": 64,
         "minibatch_size": 128, "progress_bar": False, "eval_freq": 0}


@pytest.fixture(scope="module")
def example_policy(tmp_path_factory):
    first, second = synthetic_tables(seed=0), synthetic_tables(seed=1, best=5, prefix="b")
    path = tmp_path_factory.mktemp("example") / "policy.zip"
    model = train_agent(AgentConfig(timesteps=6144, **QUICK), *first, out=path, pools=[second])
    return path, model


def test_logits_follow_the_candidates_when_they_are_shuffled(example_policy):
    _, model = example_policy
    policy = model.policy
    assert isinstance(policy, CandidateScorerPolicy)
    obs = np.random.default_rng(0).normal(size=(8, policy.per_candidate)).astype(np.float32)
    order = np.random.default_rng(1).permutation(8)
    with torch.no_grad():
        logits = policy.get_distribution(torch.as_tensor(obs.reshape(1, -1))).distribution.logits[0].numpy()
        shuffled = policy.get_distribution(torch.as_tensor(obs[order].reshape(1, -1))).distribution.logits[0].numpy()
    np.testing.assert_allclose(shuffled, logits[order], rtol=1e-5, atol=1e-6)
    # the log-softmax of the scorer's outputs, so the whole pool can be rated with the same network
    np.testing.assert_allclose(logits, torch.log_softmax(torch.as_tensor(policy.score(obs)), 0).numpy(), atol=1e-5)


def test_trained_policy_prefers_aligned_examples_on_a_pool_it_never_saw(example_policy):
    path, _ = example_policy
    train, val = synthetic_tables(seed=7, best=2, per_group=50, prefix="n")  # 400 examples, another best group
    sel = apply_policy(path, budget=0.05, table=train, val_table=val, seed=0)
    assert len(sel.ids) == 20 and len(set(sel.ids)) == 20
    x, _, names = example_matrix(train, val)
    chosen = [train.ids.index(i) for i in sel.ids]
    align = x[:, names.index("alignment")]
    # best group (group 2) = rows 100..149; random picks would land there 1 time in 8
    assert np.mean([100 <= r < 150 for r in chosen]) >= 0.8, align[chosen]
    again = apply_policy(path, budget=0.05, table=train, val_table=val, seed=3)
    assert again.ids == sel.ids  # the whole pool is scored: no chance left


def _exact_greedy(policy, train, val, budget):
    """The reference: after every pick, rescore every open example of the pool and take the best."""
    env = policy.make_env(train, val, budget)
    env.reset(seed=0)
    while len(env.taken) < env.budget:
        rows = np.flatnonzero(env.open)
        env.take(int(rows[np.argmax(policy.model.policy.score(env.candidate_matrix(rows)))]))
    return env.selected_rows()


def test_block_rollout_matches_exact_greedy_and_keeps_redundancy_exact(example_policy):
    path, _ = example_policy
    policy = load_policy(path)
    train, val = synthetic_tables(seed=7, best=2, per_group=50, prefix="n")  # 400 examples
    exact = _exact_greedy(policy, train, val, 60)
    assert 60 <= FULL_PASSES  # a budget within the passes is picked one by one: the same picks, in order
    np.testing.assert_array_equal(apply_policy(path, budget=60, table=train, val_table=val).ids,
                                  [train.ids[i] for i in exact])
    env = policy.make_env(train, val, 60)
    env.reset(seed=0)
    greedy_in_blocks(env, policy.model.policy.score, passes=6)  # blocks of 10 picks, shortlists of 40
    blocks = env.selected_rows()
    assert len(blocks) == 60 and len(set(blocks.tolist())) == 60
    assert len(set(blocks.tolist()) & set(exact.tolist())) >= 54  # measured: 60 of 60
    unit = env.state.unit  # every example's redundancy is its largest cosine with any pick, as if picked one by one
    np.testing.assert_allclose(env.redundancy, np.maximum(0, (unit @ unit[blocks].T).max(axis=1)), atol=1e-6)


def test_sidecar_records_the_candidate_schema_and_checks_features(example_policy):
    path, _ = example_policy
    policy = load_policy(path)
    assert policy.sidecar["env_id"] == "selectgym/ExampleSelect-v0"
    assert policy.sidecar["observation"]["kind"] == "example_features"
    train, val = synthetic_tables(seed=3)
    with pytest.raises(SelectgymError):
        policy.check(train, None)  # alignment needs the target set


def test_example_select_needs_an_actor_critic():
    with pytest.raises(SelectgymError, match="ppo or a2c"):
        AgentConfig(env_id="selectgym/ExampleSelect-v0", algo="dqn")


def test_subtask_balance_gives_a_second_subtask_its_share_of_the_picks(example_policy):
    path, _ = example_policy
    train, val = synthetic_tables(seed=7, best=2, per_group=50, prefix="n")
    grads = np.asarray(train.get("grad"))
    other = grads[200:250].mean(axis=0)  # group 4's direction: a second target subtask
    rows = np.concatenate([np.asarray(val.get("grad")), other + np.random.default_rng(0).normal(size=(2, 16)) * 0.05])
    val2 = FeatureTable([f"val{j}" for j in range(8)], {"grad": rows.astype(np.float32)})
    labels = ["a"] * 6 + ["b"] * 2  # quotas at 20 picks: 15 and 5
    plain = apply_policy(path, budget=20, table=train, val_table=val2, seed=0)
    balanced = apply_policy(path, budget=20, table=train, val_table=val2, seed=0, subtasks=labels)

    def in_b(sel):
        return sum(200 <= train.ids.index(i) < 250 for i in sel.ids)

    assert in_b(balanced) == 5 and in_b(plain) < 5
    assert sum(100 <= train.ids.index(i) < 150 for i in balanced.ids) >= 12  # the rest still from the best group
    assert balanced.info["subtask_balance"] and not plain.info["subtask_balance"]
    with pytest.raises(SelectgymError, match="validation rows"):
        apply_policy(path, budget=20, table=train, val_table=val2, seed=0, subtasks=labels[:-1])


def test_alignment_target_reaches_the_observation_and_the_saved_policy(example_policy):
    import gymnasium as gym

    from selectgym.envs.summaries import alignment

    train, val = synthetic_tables(seed=4)
    val = FeatureTable(val.ids, {"grad": np.asarray(val.get("grad")) * np.linspace(1, 20, len(val))[:, None]})
    for target in ("mean", "unit_mean"):
        env = gym.make("selectgym/ExampleSelect-v0", table=train, val_table=val, budget=12, chunk=8,
                       alignment_target=target).unwrapped
        column = env.columns.index("alignment")
        np.testing.assert_allclose(env.state.x[:, column], alignment(train, val, target=target), rtol=1e-5, atol=1e-6)
    assert not np.allclose(alignment(train, val), alignment(train, val, target="unit_mean"))
    path, _ = example_policy
    assert load_policy(path).sidecar["env_kwargs"]["alignment_target"] == "mean"
