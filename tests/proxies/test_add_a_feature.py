"""Adding a feature is one class and one registry entry (issue 29): registered by its dotted path, it reaches the
defaults of every list of features (bench pools, the agents' training pools, the CLI's flags), the bench
computes it on its pool, and the policy the bench trains observes its array and selects with it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np
import pytest

from selectgym.errors import SelectgymError
from selectgym.proxies.feature_config import FeatureConfig
from selectgym.proxies.features import FEATURES, Feature, features_for_pool, register_feature
from selectgym.proxies.features.base import positive

PATH = "tests.proxies.test_add_a_feature:TargetWords"


@dataclass
class TargetWords(Feature):
    """Words in each example's SFT target: a scalar a policy can observe by name."""

    name = "target_words"
    help = "words in the SFT target"
    pool_kind = "sft"
    train_arrays = ("target_words",)

    word_scale: float = field(default=1.0, metadata={"help": "target_words: multiply the counts by this"})

    def __post_init__(self) -> None:
        positive("word_scale", self.word_scale, "1.0")

    def train(self, proxy, examples, cache):
        return {"target_words": np.array([self.word_scale * len(ex.target.split()) for ex in examples],
                                         dtype=np.float32)}


@pytest.fixture()
def registered(monkeypatch):
    """``TargetWords`` registered by its dotted path for one test (the registry has no removal: restored after)."""
    monkeypatch.setattr(FEATURES, "_entries", dict(FEATURES._entries))
    return register_feature(PATH)


def test_every_list_of_features_derives_from_the_registry(registered):
    from selectgym.agents.pools import TrainingPools
    from selectgym.bench.config import FEATURE_POOLS
    from selectgym.commands import features as command

    assert registered is TargetWords and FEATURES["target_words"] is TargetWords
    assert features_for_pool("sft") == ["grad", "grad_adam", "loss", "length", "embedding", "nice", "target_words"]
    assert features_for_pool("sft", rollouts=False)[-1] == "target_words" and "nice" not in features_for_pool(
        "sft", rollouts=False)
    assert FEATURE_POOLS["sft"][-1] == "target_words" and FEATURE_POOLS["preference"] == ["dpo_gap"]
    pools = TrainingPools(families={"a": {}, "b": {}}, proxy="tiny")
    assert pools.feature_config("sft").features[-1] == "target_words"

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--pool", "p.jsonl", "--features", "grad,target_words", "--word-scale", "2"])
    cfg = FeatureConfig(**{n: getattr(args, n) for n in args._config_fields},
                        features=command.feature_list(args.features))
    assert cfg.feature("target_words").word_scale == 2.0 and cfg.to_dict()["word_scale"] == 2.0
    assert "word_scale" not in FeatureConfig().to_dict()  # another feature's store key is left as it was
    with pytest.raises(SelectgymError, match="word-scale must be a positive number"):
        FeatureConfig(features=["target_words"], word_scale=0)


def test_a_registered_option_name_is_taken():
    @dataclass
    class Clash(Feature):
        name = "clash"
        train_arrays = ("clash",)
        dpo_beta: float = 1.0

    with pytest.raises(SelectgymError, match="dpo_beta, which feature 'dpo_gap' owns"):
        register_feature(Clash)
    with pytest.raises(SelectgymError, match="not a Feature subclass"):
        register_feature("tests.proxies.test_add_a_feature:PATH")
    assert "clash" not in FEATURES


@pytest.mark.slow
def test_the_bench_computes_it_and_the_policy_selects_with_it(registered, tmp_path, monkeypatch):
    from selectgym.agents.policy_file import load_policy
    from selectgym.bench.harness import Bench, BenchConfig, run_bench
    from selectgym.data import load_pool
    from selectgym.proxies.pipeline import load_features

    def finetune(self, ids, seed, full):  # selection is what is tested here, not training the target
        return {"accuracy": 0.0, "val_loss": 1.0, "train_seconds": 0.0, "useful_share": 0.0}

    monkeypatch.setattr(Bench, "finetune", finetune)
    out = tmp_path / "b"
    cfg = BenchConfig(out=str(out), suite_size=40, validation_size=4, methods=["policy"], budgets=[0.1], seeds=[0],
                      proj_dim=64, proxy_warmup_steps=1, rollouts=2, max_new_tokens=2, agent_algo="ppo",
                      agent_timesteps=64, agent={"n_envs": 2, "n_steps": 32, "minibatch_size": 32, "n_clusters": 4,
                                                 "batch_size": 2, "observe": ["alignment", "target_words"],
                                                 "order_by": "-target_words"})
    result = run_bench(cfg, progress=False)

    train, val, store = load_features(out / "features" / "sft")
    pool = load_pool(out / "suite" / "sft.jsonl")
    np.testing.assert_array_equal(train.get("target_words"), [len(ex.target.split()) for ex in pool])
    assert store.meta["features"][-1] == "target_words" and val.has("grad")
    assert load_features(out / "features" / "preference")[1] is None  # validation grad has one owner now
    policy = load_policy(out / "policies" / "policy-b0.1-s0.zip").sidecar
    assert "target_words" in policy["observation"]["features"] and "target_words" in policy["features_schema"]
    (run,) = result["runs"]
    assert run["method"] == "policy" and run["n_selected"] == 4 and set(run["ids"]) <= set(pool.ids)
