import json

import numpy as np
import pytest

from selectgym.bench.harness import BenchConfig, run_bench
from selectgym.bench.report import markdown_table, summarise
from selectgym.data import load_pool
from selectgym.errors import SelectgymError


@pytest.mark.slow
def test_bench_table_matches_its_json(tmp_path):
    cfg = BenchConfig(out=str(tmp_path / "b"), suite_size=40, validation_size=4,
                      methods=["less", "gradalign:sim", "random", "full"], budgets=[0.1], seeds=[0, 1],
                      proj_dim=64, proxy_warmup_steps=1, rollouts=2, max_new_tokens=2, ft_max_steps=1,
                      ft_batch_size=2)
    result = run_bench(cfg)
    saved = json.loads((tmp_path / "b" / "runs.json").read_text())
    runs = saved["runs"]
    assert sorted((r["method"], r["seed"]) for r in runs) == sorted(
        (m, s) for m in ("less", "random", "full") for s in (0, 1))
    # the random-weight proxy solves no validation problem: GradAlign's sim mode is recorded as failed, not fatal
    assert {f["method"] for f in saved["failures"]} == {"gradalign:sim"}
    table = (tmp_path / "b" / "table.md").read_text()
    assert table.startswith(markdown_table(summarise(runs)))
    assert "- gradalign:sim failed: the pooled validation GRPO gradient is zero" in table
    assert table == result["table"]
    pool = load_pool(tmp_path / "b" / "suite" / "sft.jsonl")
    useful = {ex.id: bool(ex.meta["useful"]) for ex in pool}
    for run in runs:
        assert run["n_selected"] == len(run["ids"]) == (40 if run["method"] == "full" else 4)
        assert run["useful_share"] == pytest.approx(np.mean([useful[i] for i in run["ids"]]))
        assert 0.0 <= run["accuracy"] <= 1.0 and np.isfinite(run["val_loss"])
    rand = {r["seed"]: r["ids"] for r in runs if r["method"] == "random"}
    assert rand[0] != rand[1]
    assert all((tmp_path / "b" / name).stat().st_size > 1000 for name in ("accuracy_vs_budget.png",
                                                                         "cost_per_method.png"))


def test_bench_config_errors():
    with pytest.raises(SelectgymError, match=r"unknown method\(s\) \['lesss'\]"):
        BenchConfig(methods=["lesss"])
    with pytest.raises(SelectgymError, match="budget must be a share in"):
        BenchConfig(budgets=[0])
    with pytest.raises(SelectgymError, match="ambiguous"):
        BenchConfig(budgets=[1.0])
    assert BenchConfig(budgets=[5, 0.1]).budgets == [5, 0.1]  # counts and shares, as everywhere
