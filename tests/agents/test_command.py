"""``selectgym train-agent``: flags and YAML reach AgentConfig; bad input is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from selectgym.agents.policy_file import read_sidecar
from selectgym.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_missing_features_folder_is_a_user_error(tmp_path, capsys):
    code = main(["train-agent", "--config", str(ROOT / "configs" / "agent_ppo.yaml"), "--features",
                 str(tmp_path / "nope"), "--no-progress-bar"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no such folder" in err and "\n" not in err


def test_bad_config_value_is_a_user_error(tmp_path, capsys):
    code = main(["train-agent", "--features", str(tmp_path), "--algo", "sac"])
    assert code == 2 and "algo 'sac' is unknown" in capsys.readouterr().err


@pytest.mark.slow
def test_train_agent_on_computed_features(suite_dir, tmp_path, capsys):
    pipeline = pytest.importorskip("selectgym.proxies.pipeline")
    features = tmp_path / "features"
    cfg = pipeline.FeatureConfig(model="tiny", features=["grad", "loss", "length", "embedding"], proj_dim=32,
                                 seed=0)
    pipeline.compute_features(suite_dir / "sft.jsonl", suite_dir / "validation.jsonl", cfg, features, progress=False)
    out = tmp_path / "policy.zip"
    code = main(["train-agent", "--config", str(ROOT / "configs" / "agent_ppo.yaml"), "--features", str(features),
                 "--eval-features", str(features), "--timesteps", "512", "--n-steps", "32", "--minibatch-size", "64",
                 "--n-clusters", "4", "--budget", "12", "--eval-freq", "256", "--no-progress-bar", "--out", str(out),
                 "--seed", "3"])
    assert code == 0, capsys.readouterr().err
    side = read_sidecar(out)
    assert side["config"]["seed"] == 3 and side["config"]["timesteps"] == 512 and side["algorithm"] == "ppo"
    assert side["config"]["reward_kwargs"] == {"lr": 1.0, "redundancy": 0.5}  # from the YAML file
    assert side["feature_config"] is not None and side["feature_config"]["proj_dim"] == 32


@pytest.mark.slow
def test_train_agent_draws_its_own_pools_and_the_policy_selects_on_a_new_one(tmp_path, capsys):
    import yaml

    from selectgym.agents.apply import apply_policy
    from selectgym.agents.pools import TrainingPools, build_pool
    from selectgym.data.suite import SuiteConfig

    cfg = yaml.safe_load((ROOT / "configs" / "policy_transfer.yaml").read_text())
    families = cfg["training_pools"]["families"]
    cfg["training_pools"].update(n_pools=2, sizes=[40], validation_size=8, proxy="tiny", proj_dim=32)
    cfg.update(timesteps=256, n_envs=2, n_steps=64, minibatch_size=64, chunk=8)
    config = tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump(cfg))
    code = main(["train-agent", "--config", str(config), "--out", str(tmp_path / "policy.zip"), "--pools-dir",
                 str(tmp_path / "pools"), "--no-progress-bar"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "pools").iterdir()) == ["pool0", "pool1"]
    sidecar = read_sidecar(tmp_path / "policy.zip")
    assert sidecar["env_id"] == "selectgym/ExampleSelect-v0" and sidecar["feature_config"]["model"] == "tiny"
    # a pool of families the training pools never drew from, featurised with the same settings
    pools = TrainingPools(**cfg["training_pools"])
    assert set(families) == set(pools.families)
    new = SuiteConfig(seed=9, size=60, validation_size=8, target_tasks={"lcm": {}}, off_target_tasks={"products": {}})
    train, val_a, _ = build_pool(new, tmp_path / "new", pools)
    sel = apply_policy(tmp_path / "policy.zip", budget=0.05, table=train, val_table=val_a)
    assert len(sel.ids) == 3 and set(sel.ids) <= set(train.ids)


@pytest.mark.slow
def test_train_agent_over_drawn_pools_gives_each_pool_its_texts_for_the_trained_reward(tmp_path, capsys):
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "policy_transfer.yaml").read_text())
    cfg["training_pools"].update(n_pools=2, sizes=[40], validation_size=8, proxy="tiny", proj_dim=32)
    cfg.update(timesteps=64, n_envs=1, n_steps=32, minibatch_size=32, chunk=8, reward="trained",
               reward_kwargs={"model": "tiny", "score": "loss", "epochs": 1})
    config = tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump(cfg))
    code = main(["train-agent", "--config", str(config), "--out", str(tmp_path / "policy.zip"), "--pools-dir",
                 str(tmp_path / "pools"), "--no-progress-bar"])
    assert code == 0, capsys.readouterr().err  # each pool's reward found its own rows' texts
    assert read_sidecar(tmp_path / "policy.zip")["config"]["reward"] == "trained"


def test_training_pools_need_example_select_and_known_keys(tmp_path, capsys):
    code = main(["train-agent", "--training-pools", "{families: {gcd: {}, lcm: {}}}", "--no-progress-bar"])
    assert code == 2 and "ExampleSelect" in capsys.readouterr().err
    code = main(["train-agent", "--env-id", "selectgym/ExampleSelect-v0", "--training-pools",
                 "{families: {gcd: {}, lcm: {}}, pools: 3}", "--out", str(tmp_path / "p.zip"), "--no-progress-bar"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown key(s) ['pools']" in err and "\n" not in err.strip()
