import math

import numpy as np
import pytest

from selectgym.bench.report import markdown_table, paired_test, plot, summarise


def runs():
    out = []
    for seed, (r, p, f) in enumerate([(0.2, 0.5, 0.6), (0.3, 0.4, 0.7), (0.1, 0.6, 0.5)]):
        out.append({"method": "random", "budget": 0.05, "seed": seed, "accuracy": r, "select_seconds": 0.0,
                    "train_seconds": 1.0, "useful_share": 0.3})
        out.append({"method": "policy", "budget": 0.05, "seed": seed, "accuracy": p, "select_seconds": 2.0,
                    "train_seconds": 1.0, "useful_share": 0.8})
        out.append({"method": "full", "budget": 1.0, "seed": seed, "accuracy": f, "select_seconds": 0.0,
                    "train_seconds": 20.0, "useful_share": 0.3})
    return out


def test_summary_means_stds_and_paired_deltas():
    rows = {(r["method"], r["budget"]): r for r in summarise(runs())}
    pol = rows[("policy", 0.05)]
    assert pol["mean"] == pytest.approx(0.5) and pol["std"] == pytest.approx(0.1)
    assert pol["vs_random"] == pytest.approx(0.3)  # (0.3 + 0.1 + 0.5) / 3
    assert pol["vs_full"] == pytest.approx(-0.1)
    from scipy import stats

    assert pol["p_random"] == pytest.approx(stats.ttest_rel([0.5, 0.4, 0.6], [0.2, 0.3, 0.1]).pvalue)
    assert math.isnan(rows[("random", 0.05)]["vs_random"])


def test_paired_test_constant_difference_has_no_p():
    d, p = paired_test([1.0, 2.0], [0.5, 1.5])
    assert d == pytest.approx(0.5) and math.isnan(p)


def test_table_lists_every_method_and_plots_exist(tmp_path):
    rows = summarise(runs())
    table = markdown_table(rows)
    assert table.count("\n") == 2 + 3
    assert "| policy | 5% | 0.500 +- 0.100 | 0.300" in table
    assert "| full | 100% |" in table
    paths = plot(rows, tmp_path)
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    assert np.isfinite(rows[0]["mean"])


def test_optional_metrics_are_averaged_and_shown_only_when_runs_have_them():
    plain = markdown_table(summarise(runs()))
    assert "preference accuracy" not in plain and "noisy-reward share" not in plain
    assert not {"preference_accuracy", "noisy_share", "pair_defect_share"} & set(summarise(runs())[0])
    with_them = runs()
    for run in with_them:
        if run["method"] == "policy":
            run.update(noisy_share=0.1 * (run["seed"] + 1), preference_accuracy=0.5 + 0.1 * run["seed"])
    with_them[0]["noisy_share"] = 0.9  # random seed 0 only: the mean is over the seeds that have it
    rows = {(r["method"], r["budget"]): r for r in summarise(with_them)}
    assert rows[("policy", 0.05)]["noisy_share"] == pytest.approx(0.2)
    assert rows[("policy", 0.05)]["preference_accuracy"] == pytest.approx(0.6)
    assert rows[("random", 0.05)]["noisy_share"] == pytest.approx(0.9)
    assert "noisy_share" not in rows[("full", 1.0)] and "pair_defect_share" not in rows[("policy", 0.05)]
    table = markdown_table(list(rows.values()))
    head, rule, *lines = table.splitlines()
    assert "| clean & on-target share | preference accuracy | noisy-reward share | val loss |" in head
    assert rule == "|" + "---|" * 11 and all(line.count("|") == 12 for line in lines)
    policy = next(line for line in lines if line.startswith("| policy |"))
    assert "| 0.80 | 0.600 | 0.20 |" in policy
    assert "| 0.30 | n/a | n/a |" in next(line for line in lines if line.startswith("| full |"))
    # with no optional metric, the table is exactly what it was
    assert plain.splitlines()[0] == ("| method | budget | accuracy (mean +- std) | vs random (p) | vs full (p) | "
                                     "clean & on-target share | val loss | select s | train s |")
