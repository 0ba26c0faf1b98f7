"""The strong simple baselines (RDS+, response length, learnability) on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from selectgym.proxies.table import FeatureTable
from selectgym.selectors import get_selector

IDS = ["a", "b", "c", "d", "e"]


def table(**arrays) -> FeatureTable:
    n = len(next(iter(arrays.values())))
    return FeatureTable(IDS[:n], {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()})


def test_length_takes_the_longest_responses_or_the_shortest():
    train = table(length=[3, 10, 1, 7])
    assert get_selector("length").select(train, None, 2, 0).ids == ["b", "d"]
    assert get_selector("length", shortest=True).select(train, None, 2, 0).ids == ["c", "a"]


def test_learnability_prefers_a_pass_rate_near_one_half():
    train = table(pass_rate=[0.0, 0.5, 1.0, 0.25, 0.9])  # p(1-p): 0, .25, 0, .1875, .09
    picked = get_selector("learnability").select(train, None, 3, 0)
    assert picked.ids == ["b", "d", "e"]
    np.testing.assert_allclose(picked.scores, [0.25, 0.1875, 0.09])


def test_rds_scores_the_cosine_with_the_mean_unit_target_embedding():
    train = table(hidden=[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    val = FeatureTable(["t1", "t2"], {"hidden": np.array([[2.0, 0.0], [0.0, 3.0]])})  # unit mean: (.5, .5)
    picked = get_selector("rds").select(train, val, 4, 0)
    r = np.sqrt(0.5)
    assert picked.ids[0] == "c" and picked.ids[-1] == "d"
    np.testing.assert_allclose(picked.pool_scores, [r, r, 1.0, -r])


def test_rds_needs_the_target_embeddings():
    from selectgym.errors import SelectgymError

    train = table(hidden=[[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(SelectgymError, match="needs target"):
        get_selector("rds").select(train, None, 1, 0)
    with pytest.raises(SelectgymError, match="target examples' 'hidden'"):
        get_selector("rds").select(train, FeatureTable(["t"], {"grad": np.ones((1, 2))}), 1, 0)


def test_the_bench_computes_hidden_only_for_a_method_that_reads_it():
    from selectgym.bench.config import BenchConfig
    from selectgym.bench.harness import Bench

    assert "hidden" in Bench(BenchConfig(methods=["rds", "random"])).pool_features("sft")
    assert "hidden" not in Bench(BenchConfig(methods=["less", "random"])).pool_features("sft")
    assert Bench(BenchConfig(methods=["less"])).pool_features("sft") == ["grad", "grad_adam", "loss", "length",
                                                                         "embedding", "nice"]


def test_hidden_feature_is_the_mean_pooled_last_hidden_state(suite_dir, tmp_path):
    import torch

    from selectgym.data import load_pool
    from selectgym.data.render import render_example
    from selectgym.proxies.pipeline import FeatureConfig, compute_features, load_features

    pool = load_pool(suite_dir / "sft.jsonl").subset(load_pool(suite_dir / "sft.jsonl").ids[:6])
    small = tmp_path / "pool.jsonl"
    small.write_text("".join(line + "\n" for line in (suite_dir / "sft.jsonl").read_text().splitlines()[:6]))
    cfg = FeatureConfig(model="tiny", features=["hidden"], proj_dim=16, warmup_steps=0, batch_size=4)
    compute_features(small, suite_dir / "validation.jsonl", cfg, tmp_path / "f", progress=False)
    train, val, _ = load_features(tmp_path / "f")
    hidden = np.asarray(train.get("hidden"))
    assert hidden.shape[0] == 6 and val is not None and val.has("hidden")
    from selectgym.proxies.lora import attach_lora
    from selectgym.proxies.models import load_model

    model, tok = load_model("tiny")
    model = attach_lora(model)  # LoRA starts as the identity (B = 0): the same hidden states as the base
    ids = torch.tensor([render_example(tok, pool[2], cfg.max_length).input_ids])
    with torch.no_grad():
        expected = model(input_ids=ids, output_hidden_states=True).hidden_states[-1].mean(1)[0].numpy()
    np.testing.assert_allclose(hidden[2], expected, rtol=1e-4, atol=1e-5)


def test_dpo_gap_takes_the_smallest_gaps_or_with_mode_largest_the_largest():
    train = table(dpo_gap=[0.5, -1.0, 2.0, 0.0])
    assert get_selector("dpo_gap").select(train, None, 2, 0).ids == ["b", "d"]
    assert get_selector("dpo_gap", mode="largest").select(train, None, 2, 0).ids == ["c", "a"]
    from selectgym.errors import SelectgymError

    with pytest.raises(SelectgymError, match="smallest .* or largest"):
        get_selector("dpo_gap", mode="widest")
