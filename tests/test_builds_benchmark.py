"""benchmarks.accuracy.builds pools runs over builds: baselines pair by seed on every build, methods by build and
seed."""

import pytest
from scipy import stats

from benchmarks.accuracy import builds  # a plain import: a broken one fails the test, never skips it


def runs(method, accuracies):
    return [{"method": method, "seed": s, "accuracy": a, "useful_share": 0.5} for s, a in accuracies.items()]


BASE = runs("random", {0: 0.1, 1: 0.2, 2: 0.3}) + runs("full", {0: 0.5, 1: 0.5, 2: 0.5})
BUILDS = {0: runs("policy", {0: 0.2, 1: 0.3, 2: 0.5}) + runs("less", {0: 0.1, 1: 0.2, 2: 0.3}),
          7: runs("policy", {0: 0.1, 1: 0.2, 2: 0.4}) + runs("less", {0: 0.1, 1: 0.1})}  # build 7 lost less seed 2


def test_baselines_pair_with_the_same_seed_on_every_build():
    pooled = builds.pool(BUILDS, BASE, ["policy", "less"])
    assert pooled["policy"]["pairs"] == 6 and pooled["policy"]["mean"] == pytest.approx(1.7 / 6)
    diffs = [0.1, 0.1, 0.2, 0.0, 0.0, 0.1]  # policy - random, build 0 then build 7
    assert pooled["policy"]["vs_random"]["diff"] == pytest.approx(sum(diffs) / 6)
    assert pooled["policy"]["vs_random"]["p_pairs"] == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue)
    means = stats.ttest_rel([1.0 / 3, 0.7 / 3], [0.2, 0.2]).pvalue  # per-build means against random's mean
    assert pooled["policy"]["vs_random"]["p_build_means"] == pytest.approx(means)
    assert pooled["policy"]["vs_full"]["diff"] == pytest.approx(-1.3 / 6)


def test_methods_pair_by_build_and_seed_and_skip_missing_runs():
    pooled = builds.pool(BUILDS, BASE, ["policy", "less"])
    vs = pooled["policy"]["vs_less"]
    assert vs["diff"] == pytest.approx((0.1 + 0.1 + 0.2 + 0.0 + 0.1) / 5)  # seed 2 of build 7 has no partner
    assert vs["p_build_means"] == pytest.approx(stats.ttest_rel([1.0 / 3, 0.15], [0.2, 0.1]).pvalue)
    assert pooled["less"]["pairs"] == 5 and pooled["less"]["vs_policy"]["diff"] == pytest.approx(-vs["diff"])
