"""`bench --objective`: the pool the target trains on, its trainer and the selectors' features follow it."""

from __future__ import annotations

import pytest

from selectgym.bench.config import BenchConfig, feature_sources
from selectgym.bench.harness import Bench, run_bench
from selectgym.data import load_pool
from selectgym.errors import SelectgymError


def test_feature_sources_follow_the_objective():
    assert feature_sources("sft") == {"sft": "sft", "preference": "preference", "verifiable": "verifiable"}
    assert feature_sources("grpo") == {"sft": "verifiable", "verifiable": "verifiable"}
    assert feature_sources("dpo") == {"sft": "preference", "preference": "preference"}


def test_a_method_the_objectives_pool_cannot_feed_is_a_one_line_error():
    with pytest.raises(SelectgymError, match="objective grpo trains on the verifiable pool, which cannot give what "
                                             "dpo_gap reads preference features"):
        BenchConfig(objective="grpo", methods=["dpo_gap", "random"])
    with pytest.raises(SelectgymError, match="learnability reads verifiable features"):
        BenchConfig(objective="dpo", methods=["learnability", "less"])
    with pytest.raises(SelectgymError, match="--objective 'ppo' is unknown"):
        BenchConfig(objective="ppo")
    # LESS reads SFT features, which every pool gives; a policy reads whatever it is given
    cfg = BenchConfig(objective="grpo", methods=["less", "policy", "learnability", "gradalign:sim"])
    assert cfg.objective == "grpo"


def _small(tmp_path, **kw) -> BenchConfig:
    return BenchConfig(out=str(tmp_path / "b"), suite_size=40, validation_size=4, budgets=[0.1], seeds=[0],
                       proj_dim=64, proxy_warmup_steps=1, rollouts=2, max_new_tokens=2, ft_max_steps=1,
                       ft_batch_size=2, **kw)


@pytest.mark.parametrize(("objective", "pool"), [("grpo", "verifiable"), ("dpo", "preference"), ("sft", "sft")])
def test_the_target_trains_with_the_objectives_trainer_on_its_pool(tmp_path, monkeypatch, objective, pool):
    seen = []

    def fake(cfg, data, ids, target, max_new_tokens=16, pairs=None):
        seen.append((cfg.method, data.source, list(ids)))
        assert (pairs is not None) == (objective == "dpo")  # held-out pairs score DPO only
        return {"accuracy": 0.0, "val_loss": 1.0, "train_seconds": 0.0, "useful_share": 0.0}

    monkeypatch.setattr("selectgym.bench.harness.finetune_and_score", fake)
    run_bench(_small(tmp_path, objective=objective, methods=["random", "full"]), progress=False)
    assert {m for m, _, _ in seen} == {objective}
    assert {src for _, src, _ in seen} == {str(tmp_path / "b" / "suite" / f"{pool}.jsonl")}
    ids = set(load_pool(tmp_path / "b" / "suite" / f"{pool}.jsonl").ids)
    assert all(set(chosen) <= ids for _, _, chosen in seen)


def test_grpo_objective_computes_the_selectors_features_on_the_verifiable_pool(tmp_path):
    bench = Bench(_small(tmp_path, objective="grpo", methods=["less", "learnability"]), progress=False)
    suite = bench.pools()
    assert bench.needed_pools() == ["sft", "verifiable"]
    train, val = bench.features(suite)
    assert train.has("grad_adam") and train.has("pass_rate")
    from selectgym.proxies.store import FeatureStore

    sft_store = FeatureStore.open(tmp_path / "b" / "features" / "sft")
    assert sft_store.meta["pool_path"].endswith("verifiable.jsonl")


@pytest.mark.slow
def test_grpo_and_dpo_benchmarks_run_end_to_end_on_tiny(tmp_path):
    for objective, methods in (("grpo", ["learnability", "random"]), ("dpo", ["dpo_gap", "random"])):
        result = run_bench(_small(tmp_path / objective, objective=objective, methods=methods), progress=False)
        assert {r["method"] for r in result["runs"]} == set(methods), result["failures"]
        assert all(0.0 <= r["accuracy"] <= 1.0 for r in result["runs"])
