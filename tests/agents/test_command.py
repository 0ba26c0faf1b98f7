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
