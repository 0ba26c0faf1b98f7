"""The envs over a lazily opened store and with sampled K-means: same observations, bounded reads."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import selectgym.envs.summaries as summaries
import selectgym.proxies.table as table_mod
from selectgym.envs import FEATURE_SELECT
from selectgym.envs.summaries import alignment, cluster_labels, nearest_centre
from selectgym.errors import SelectgymError
from selectgym.proxies.store import FeatureStore
from selectgym.proxies.table import DiskArray, FeatureTable
from tests.envs.synthetic import synthetic_tables


def _stored(tmp_path, train: FeatureTable, val: FeatureTable, shard_rows: int = 50):
    store = FeatureStore.create(tmp_path, {"t": 1}, {})
    starts = range(0, len(train), shard_rows)
    for s, start in enumerate(starts):
        rows = np.arange(start, min(start + shard_rows, len(train)))
        store.write_shard("train", s, [train.ids[i] for i in rows], {k: v[rows] for k, v in train.arrays.items()})
    store.write_shard("val", 0, val.ids, val.arrays)
    store.mark_complete({"train": len(starts), "val": 1})
    return store.table("train"), store.table("val")


def test_feature_select_over_a_lazy_store_matches_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(table_mod, "BLOCK_BYTES", 7 * 16 * 4)  # 7-row blocks across 50-row shards
    train, val = synthetic_tables()
    lazy_train, lazy_val = _stored(tmp_path, train, val)
    assert isinstance(lazy_train.get("grad"), DiskArray) and isinstance(lazy_train.get("embedding"), DiskArray)
    np.testing.assert_allclose(alignment(lazy_train, lazy_val), alignment(train, val), atol=1e-6)
    envs = [gym.make(FEATURE_SELECT, table=t, val_table=v, budget=40, n_clusters=8, batch_size=8,
                     reward="none").unwrapped for t, v in ((train, val), (lazy_train, lazy_val))]
    np.testing.assert_array_equal(envs[0].slot_of_row, envs[1].slot_of_row)
    obs = [env.reset(seed=3)[0] for env in envs]
    for action in (0, 2, 2, 5, 0):
        np.testing.assert_allclose(obs[0], obs[1], atol=1e-5)
        obs = [env.step(action)[0] for env in envs]
    np.testing.assert_array_equal(envs[0].selected_rows(), envs[1].selected_rows())


def test_sampled_kmeans_is_seeded_and_assigns_every_row_to_its_nearest_centre(monkeypatch):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 5)) * 6
    emb = (centres[rng.integers(0, 6, 600)] + rng.normal(size=(600, 5)) * 0.3).astype(np.float32)
    table = FeatureTable([str(i) for i in range(600)], {"embedding": emb})
    whole = cluster_labels(table, 6, seed=2)
    monkeypatch.setattr(summaries, "KMEANS_SAMPLE", 120)
    monkeypatch.setattr(table_mod, "BLOCK_BYTES", 64 * 5 * 4)
    sampled = cluster_labels(table, 6, seed=2)
    np.testing.assert_array_equal(sampled, cluster_labels(table, 6, seed=2))
    assert set(sampled.tolist()) == set(range(6))
    # the same partition as K-means on every row (well separated groups), up to the label names
    pairs = set(zip(whole.tolist(), sampled.tolist(), strict=True))
    assert len(pairs) == 6
    d2 = ((emb[:, None, :].astype(np.float64) - centres[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(nearest_centre(emb, centres), d2.argmin(1))


def test_alignment_names_a_nan_row():
    train = FeatureTable(["a", "b"], {"grad": np.array([[1.0, 0.0], [np.nan, 1.0]])}, {"table": "train"})
    val = FeatureTable(["v"], {"grad": np.array([[1.0, 0.0]])})
    with pytest.raises(SelectgymError, match=r"NaN or inf in table 'train' \('grad': 1 row\(s\), e\.g\. 'b'\)"):
        alignment(train, val)


def test_feature_select_over_a_lazy_store_never_loads_a_whole_array(tmp_path, monkeypatch):
    train, val = synthetic_tables()
    lazy_train, lazy_val = _stored(tmp_path, train, val)
    monkeypatch.setattr(summaries, "KMEANS_SAMPLE", 100)  # the pool (240 rows) is clustered from a sample
    monkeypatch.setattr(table_mod, "BLOCK_BYTES", 7 * 16 * 4)

    def whole(self, *args, **kwargs):
        raise AssertionError(f"{self.name} loaded whole")

    monkeypatch.setattr(DiskArray, "__array__", whole)
    env = gym.make(FEATURE_SELECT, table=lazy_train, val_table=lazy_val, budget=40, n_clusters=8,
                   reward="none").unwrapped
    env.reset(seed=0)
    assert env.step(0)[0].shape == env.observation_space.shape
