"""The shipped `mini` and default policy: every machine loads the same files and builds nothing."""

from __future__ import annotations

import pytest

from selectgym.proxies import mini
from selectgym.proxies.mini import SHIPPED_DIGEST, SHIPPED_DIR, MiniConfig

#: the digest written in the README; a new shipped build changes it here, in mini.SHIPPED_DIGEST and in the README
README_DIGEST = "578115233875a07a"


def test_shipped_weights_have_the_pinned_digest():
    from selectgym.proxies.models import weights_digest
    from selectgym.utils import file_digest

    assert SHIPPED_DIGEST == README_DIGEST
    assert weights_digest("mini") == SHIPPED_DIGEST
    assert weights_digest(str(SHIPPED_DIR)) == SHIPPED_DIGEST  # the same bytes named by their path
    assert file_digest(SHIPPED_DIR / "model.safetensors") == "26c4c4faa0271c0d"
    assert mini.mini_dir() == SHIPPED_DIR and mini.is_shipped(MiniConfig())
    assert not mini.is_shipped(MiniConfig(seed=1))


def test_load_model_mini_loads_the_shipped_files_and_builds_nothing(tmp_path, monkeypatch):
    from selectgym.proxies.models import load_model

    monkeypatch.setenv("SELECTGYM_CACHE", str(tmp_path))
    monkeypatch.setattr(mini, "pretrain", lambda *a, **k: pytest.fail("the shipped mini was rebuilt"))
    model, tok = load_model("mini")
    assert sum(p.numel() for p in model.parameters()) == 1_180_800
    assert tok.eos_token == mini.EOS and model.config.vocab_size == len(tok)
    assert not (tmp_path / "models").exists()


def test_model_info_prints_the_digest(capsys):
    from selectgym.cli import main

    assert main(["model", "info", "mini"]) == 0
    out = capsys.readouterr().out
    assert SHIPPED_DIGEST in out and str(SHIPPED_DIR) in out and "shipped: yes" in out


def test_the_default_policy_ships_and_was_trained_on_the_shipped_mini():
    from selectgym.agents.policy_file import DEFAULT_POLICY, load_policy

    assert DEFAULT_POLICY.is_file()
    policy = load_policy("default")
    assert policy.path == DEFAULT_POLICY
    assert policy.sidecar["env_id"] == "selectgym/ExampleSelect-v0"
    assert policy.sidecar["feature_config"]["model"] == "mini"
    assert policy.sidecar["proxy_weights"] == SHIPPED_DIGEST


#: LESS's 5% of the demo pool (seed 0) on the shipped mini, as `selectgym demo` picked it (benchmarks/results/demo.json)
DEMO_LESS_PICKS = [
    "chain_sum-00513", "basic_arithmetic-00195", "basic_arithmetic-00100", "basic_arithmetic-00563",
    "basic_arithmetic-00285", "chain_sum-00382", "chain_sum-00324", "chain_sum-00037", "chain_sum-00426",
    "chain_sum-00210", "chain_sum-00502", "chain_sum-00346", "chain_sum-00230", "chain_sum-00013", "chain_sum-00265",
    "chain_sum-00336", "chain_sum-00475", "chain_sum-00104", "chain_sum-00254", "chain_sum-00413", "chain_sum-00068",
    "count_bits-00144", "chain_sum-00424", "chain_sum-00015", "chain_sum-00146", "count_bits-00543",
    "count_bits-00257", "basic_arithmetic-00486", "count_bits-00040", "chain_sum-00208"]
#: two scores closer than this (relative to the score scale) may swap on another CPU's floating point
TIE = 1e-5


@pytest.mark.slow
def test_the_demo_pool_gives_the_pinned_less_picks(tmp_path):
    """The demo's LESS picks, recomputed from the shipped weights (the demo's suite, target half and feature
    settings; LESS reads only grad_adam, about 20 s): the same ids, except where two scores tie to float precision."""
    import numpy as np
    import yaml

    from selectgym.agents.pools import write_target_halves
    from selectgym.commands.demo import DEMO_CONFIG
    from selectgym.data.suite import SuiteConfig, make_suite
    from selectgym.proxies.pipeline import FeatureConfig, compute_features, load_features
    from selectgym.selectors import get_selector

    demo = yaml.safe_load(DEMO_CONFIG.read_text())
    make_suite(tmp_path / "suite", SuiteConfig(seed=demo["suite_seed"], size=demo["suite_size"],
                                               validation_size=demo["validation_size"]))
    write_target_halves(tmp_path / "suite" / "validation.jsonl", tmp_path / "select.jsonl", tmp_path / "eval.jsonl")
    cfg = FeatureConfig(model="mini", features=["grad_adam"], proj_dim=demo["proj_dim"], warmup_steps=20,
                        seed=demo["suite_seed"])
    compute_features(tmp_path / "suite" / "sft.jsonl", tmp_path / "select.jsonl", cfg, tmp_path / "f", progress=False)
    train, val, _ = load_features(tmp_path / "f")
    picked = get_selector("less").select(train, val, demo["budgets"][0], 0)
    assert len(picked.ids) == len(DEMO_LESS_PICKS)
    if picked.ids == DEMO_LESS_PICKS:
        return
    scores = dict(zip(train.ids, np.asarray(picked.pool_scores, dtype=np.float64), strict=True))
    cutoff = min(scores[i] for i in picked.ids)
    scale = max(abs(s) for s in scores.values())
    for i in set(picked.ids) ^ set(DEMO_LESS_PICKS):  # only near-ties at the cut may swap
        assert abs(scores[i] - cutoff) <= TIE * scale, (i, scores[i], cutoff)
