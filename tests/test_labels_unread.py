"""The suite's ground-truth labels are for measuring only: shuffle them and nothing a selector, an env or an
agent sees or is rewarded with changes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selectgym.data.io import load_pool
from selectgym.proxies.feature_config import FeatureConfig
from selectgym.proxies.pipeline import compute_features, load_features

LABELS = ("clean", "on_target", "useful", "defect", "noisy_reward", "pair_defect")


def shuffled_labels(src, dst, seed: int = 0) -> None:
    """The same pool file with the label fields of ``meta`` permuted across examples."""
    records = [json.loads(line) for line in src.read_text().splitlines()]
    order = np.random.default_rng(seed).permutation(len(records))
    labels = [{k: r["meta"][k] for k in LABELS if k in r["meta"]} for r in records]
    for r, i in zip(records, order, strict=True):
        r["meta"] = {**{k: v for k, v in r["meta"].items() if k not in LABELS}, **labels[i]}
    dst.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.mark.slow
def test_shuffled_labels_change_no_feature_selection_observation_or_reward(suite_dir, tmp_path):
    import gymnasium as gym

    import selectgym.envs  # noqa: F401  (registers the selectgym/ ids)
    from selectgym.selectors import get_selector

    shuffled = tmp_path / "sft.jsonl"
    shuffled_labels(suite_dir / "sft.jsonl", shuffled)
    before = [bool(ex.meta["useful"]) for ex in load_pool(suite_dir / "sft.jsonl")]
    after = [bool(ex.meta["useful"]) for ex in load_pool(shuffled)]
    assert before != after and sorted(before) == sorted(after)  # the labels really moved

    cfg = FeatureConfig(model="tiny", features=["grad", "grad_adam", "loss", "length", "embedding"], proj_dim=64,
                        warmup_steps=2, batch_size=8, max_length=64, seed=0)
    tables = []
    for name, pool in (("real", suite_dir / "sft.jsonl"), ("shuffled", shuffled)):
        compute_features(pool, suite_dir / "validation.jsonl", cfg, tmp_path / name, progress=False)
        train, val, _ = load_features(tmp_path / name)
        tables.append((train, val))
    (train_a, val_a), (train_b, val_b) = tables
    for name in train_a.arrays:
        np.testing.assert_array_equal(train_a.get(name), train_b.get(name), err_msg=name)

    for method in ("less", "random"):
        a = get_selector(method).select(train_a, val_a, 0.1, seed=0)
        b = get_selector(method).select(train_b, val_b, 0.1, seed=0)
        assert a.ids == b.ids, method

    actions = [0, 3, 1, 3, 2]
    trace = []
    for train, val in tables:
        env = gym.make("selectgym/FeatureSelect-v0", table=train, val_table=val, budget=24, n_clusters=4,
                       batch_size=4, reward="linear").unwrapped
        obs, _ = env.reset(seed=0)
        seen = [obs]
        for action in actions:
            obs, reward, *_ = env.step(action)
            seen += [obs, np.array([reward])]
        trace.append(np.concatenate([np.ravel(x) for x in seen]))
    np.testing.assert_array_equal(trace[0], trace[1])

    trace = []
    for train, val in tables:
        env = gym.make("selectgym/ExampleSelect-v0", table=train, val_table=val, budget=6, chunk=8,
                       reward="linear").unwrapped
        obs, _ = env.reset(seed=0)
        seen = [obs]
        for action in (0, 5, 2, 7, 1, 3):
            obs, reward, *_ = env.step(action)
            seen += [obs, np.array([reward])]
        trace.append(np.concatenate([np.ravel(x) for x in seen]))
    np.testing.assert_array_equal(trace[0], trace[1])
