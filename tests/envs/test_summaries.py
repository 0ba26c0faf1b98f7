"""Per-example features and clusters the envs summarise."""

from __future__ import annotations

import numpy as np
import pytest

from selectgym.envs.summaries import FEATURES, alignment, cluster_labels, feature_matrix, zscore
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable


def test_alignment_by_hand():
    train = FeatureTable(["a", "b", "c"], {"grad": np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])})
    val = FeatureTable(["v", "w"], {"grad": np.array([[2.0, 0.0], [0.0, 0.0]])})  # mean (1, 0)
    np.testing.assert_allclose(alignment(train, val), [0.6, 0.0, -1.0])


def test_alignment_unit_mean_target_by_hand():
    # one target example with a 10x larger gradient: it sets the mean's direction, not LESS's unit mean
    train = FeatureTable(["a", "b"], {"grad": np.array([[0.0, 1.0], [1.0, 0.0]])})
    val = FeatureTable(["v", "w"], {"grad": np.array([[10.0, 0.0], [0.0, 1.0]])})
    np.testing.assert_allclose(alignment(train, val), [0.5 / np.hypot(5.0, 0.5), 5.0 / np.hypot(5.0, 0.5)])
    np.testing.assert_allclose(alignment(train, val, target="unit_mean"), [np.sqrt(0.5), np.sqrt(0.5)])
    x, _ = feature_matrix(train, val, ["alignment"], alignment_target="unit_mean")
    np.testing.assert_allclose(x[:, FEATURES.index("alignment")], [np.sqrt(0.5), np.sqrt(0.5)])
    with pytest.raises(SelectgymError, match="alignment target 'median' is unknown"):
        alignment(train, val, target="median")


def test_zscore_by_hand_clipped_and_flat():
    x = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, population std sqrt(1.25)
    expected = (x - 2.5) / np.sqrt(1.25)
    np.testing.assert_allclose(zscore(x, None), expected)
    np.testing.assert_allclose(zscore(x, 1.0), np.clip(expected, -1.0, 1.0))
    assert zscore(x, 1.0).max() == 1.0 and zscore(x, None).max() > 1.0
    outlier = np.r_[np.zeros(99), 1.0]  # z of the outlier is sqrt(99) ~ 9.95: the default bound of 5 clips it
    assert zscore(outlier).max() == 5.0
    assert not zscore(np.full(3, 7.0)).any()  # a flat column is all zeros, not NaN


def test_feature_matrix_scales_and_flags():
    train = FeatureTable(["a", "b", "c", "d"], {"loss": np.array([1.0, 2.0, 3.0, 4.0]),
                                                "length": np.array([9.0, 9.0, 9.0, 9.0])})
    x, present = feature_matrix(train, None)
    z = (np.arange(4) - 1.5) / np.std(np.arange(4))
    np.testing.assert_allclose(x[:, FEATURES.index("loss")], z)
    np.testing.assert_array_equal(x[:, FEATURES.index("length")], 0.0)  # constant -> 0, not NaN
    np.testing.assert_array_equal(present, [0, 0, 0, 1, 1])
    with pytest.raises(SelectgymError, match=r"features lack \['pass_rate'\]"):
        feature_matrix(train, None, ["loss", "pass_rate"])


def test_cluster_labels_are_seeded_and_checked():
    rng = np.random.default_rng(0)
    table = FeatureTable([str(i) for i in range(60)], {"embedding": rng.normal(size=(60, 4))})
    np.testing.assert_array_equal(cluster_labels(table, 5, seed=1), cluster_labels(table, 5, seed=1))
    assert set(cluster_labels(table, 5, seed=1)) == set(range(5))
    with pytest.raises(SelectgymError, match="cannot make 61 clusters from 60"):
        cluster_labels(table, 61)
