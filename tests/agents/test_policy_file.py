"""Saved policies: same actions after loading, a sidecar that describes them, schema checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

import selectgym
from selectgym.agents import AgentConfig, load_policy, train_agent
from selectgym.agents.policy_file import read_sidecar, sidecar_path
from selectgym.envs.feature_select import CLUSTER_STATS
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable
from tests.agents.conftest import QUICK


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo", "dqn", "a2c"])
def test_predict_is_the_same_after_loading(tables, tmp_path, algo):
    path = tmp_path / "policy.zip"
    model = train_agent(AgentConfig(algo=algo, timesteps=512, n_steps=32 if algo != "dqn" else None,
                                    minibatch_size=64, **QUICK), *tables, out=path)
    obs = np.random.default_rng(1).uniform(-1, 1, (32, *model.observation_space.shape)).astype(np.float32)
    before = model.predict(obs, deterministic=True)[0]
    loaded = load_policy(path)
    np.testing.assert_array_equal(loaded.model.predict(obs, deterministic=True)[0], before)
    assert type(loaded.model) is type(model)
    mask = np.ones(8, dtype=bool)
    assert [loaded.act(o, mask) for o in obs[:5]] == [int(a) for a in before[:5]]


def test_sidecar_describes_the_policy(ppo_policy):
    path, _ = ppo_policy
    assert not path.with_suffix(".json").exists()  # one file: the sidecar lives inside the zip
    side = read_sidecar(path)
    assert side["algorithm"] == "ppo" and side["env_id"] == "selectgym/FeatureSelect-v0"
    assert side["selectgym_version"] == selectgym.__version__
    assert side["observation"]["n_clusters"] == 8 and side["observation"]["stats"] == list(CLUSTER_STATS)
    assert side["observation"]["shape"] == [8 * 13 + 6]
    assert side["observation"]["features"] == ["alignment", "pass_rate", "dpo_gap", "loss", "length"]
    assert side["feature_config"] == {"proj_dim": 16, "seed": 0}
    assert side["features_schema"]["grad"] == [16]
    assert side["reward"] == {"name": "linear", "lr": 1.0, "redundancy": 0.5, "normalise": True,
                              "train_grad": "grad", "val_grad": "grad"}


def test_masked_actions_skip_closed_clusters(ppo_policy, tables):
    path, _ = ppo_policy
    policy = load_policy(path)
    env = policy.make_env(*tables, budget=30)
    obs, _ = env.reset(seed=0)
    favourite = policy.act(obs, np.ones(8, dtype=bool))
    mask = np.ones(8, dtype=bool)
    mask[favourite] = False
    second = policy.act(obs, mask)
    assert second != favourite
    values = policy.action_values(obs)
    assert values[second] == values[mask].max()


def test_schema_mismatch_is_a_one_line_error(ppo_policy, tables):
    path, _ = ppo_policy
    train, val = tables
    lean = train.subset(range(len(train)))
    del lean.arrays["dpo_gap"]
    with pytest.raises(SelectgymError, match=r"observes .* but the given features lack \['dpo_gap'\]") as err:
        load_policy(path, lean, val)
    assert "\n" not in str(err.value) and '"proj_dim": 16' in str(err.value)
    with pytest.raises(SelectgymError, match=r"observes alignment against a target set.*pass --val FILE"):
        load_policy(path, train, None)
    no_embedding = train.subset(range(len(train)))
    del no_embedding.arrays["embedding"]
    with pytest.raises(SelectgymError, match="clusters on 'embedding'"):
        load_policy(path, no_embedding, val)


def test_missing_files_are_errors(tmp_path, ppo_policy):
    with pytest.raises(SelectgymError, match="not found"):
        load_policy(tmp_path / "nope.zip")
    path, _ = ppo_policy
    lonely = tmp_path / "lonely.zip"
    load_policy(path).model.save(lonely)  # SB3's own zip, without selectgym's sidecar
    with pytest.raises(SelectgymError, match=r"has no sidecar \(selectgym.json inside or lonely.json beside it\)"):
        load_policy(lonely)


def test_two_file_policies_still_load(tmp_path, ppo_policy, tables):
    path, model = ppo_policy
    legacy = tmp_path / "legacy.zip"
    model.save(legacy)
    sidecar_path(legacy).write_text(json.dumps(read_sidecar(path)))
    obs = load_policy(path).make_env(*tables, budget=30).reset(seed=0)[0]
    assert load_policy(legacy).act(obs, np.ones(8, dtype=bool)) == load_policy(path).act(obs, np.ones(8, dtype=bool))


def test_other_projection_dim_or_settings_are_refused(ppo_policy, tables):
    path, _ = ppo_policy
    train, val = tables
    wide = FeatureTable(train.ids, {**train.arrays, "grad": np.hstack([train.get("grad")] * 2)}, train.meta)
    wide_val = FeatureTable(val.ids, {**val.arrays, "grad": np.hstack([val.get("grad")] * 2)})
    with pytest.raises(SelectgymError, match=r"other shapes: grad \[32\] \(policy: \[16\]\)") as err:
        load_policy(path, wide, wide_val)
    assert "\n" not in str(err.value)
    reseeded = FeatureTable(train.ids, train.arrays, {**train.meta, "config": {"seed": 1, "dim": 16}})
    with pytest.raises(SelectgymError, match=r"other settings: seed 1 \(policy: 0\)"):
        load_policy(path, reseeded, val)
    same = FeatureTable(train.ids, train.arrays, {**train.meta, "config": {"seed": 0}})
    assert load_policy(path, same, val).sidecar["feature_config"]["seed"] == 0


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_damaged_policy_zip_is_a_one_line_error(tmp_path, ppo_policy, damage):
    path, _ = ppo_policy
    broken = tmp_path / "broken.zip"
    data = path.read_bytes()
    broken.write_bytes(data[:len(data) // 2] if damage == "truncated" else np.random.default_rng(0).bytes(4096))
    with pytest.raises(SelectgymError, match="broken.zip is not a readable policy") as err:
        load_policy(broken)
    assert "\n" not in str(err.value)
