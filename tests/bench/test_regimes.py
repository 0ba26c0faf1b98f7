"""The bench's regime settings: the suite's opt-in defects, the picked share of each, and DPO's held-out pairs."""

from __future__ import annotations

import numpy as np
import pytest

from selectgym.bench.harness import Bench, BenchConfig, picked_shares
from selectgym.data import load_pool
from selectgym.data.pool import Example, Pool
from selectgym.errors import SelectgymError


def _small(tmp_path, **kw) -> BenchConfig:
    options = {"out": str(tmp_path / "b"), "suite_size": 40, "validation_size": 4, "budgets": [0.1], "seeds": [0],
               "proj_dim": 64, "proxy_warmup_steps": 1, "rollouts": 2, "max_new_tokens": 2, "ft_max_steps": 1,
               "ft_batch_size": 2, "methods": ["random", "full"]}
    return BenchConfig(**{**options, **kw})


@pytest.mark.parametrize("name", ["noisy_answer_share", "pair_defect_share"])
def test_shares_are_checked_and_refused_with_pools_of_ones_own(tmp_path, name):
    assert getattr(BenchConfig(), name) == 0.0
    flag = name.replace("_", "-")
    with pytest.raises(SelectgymError, match=rf"^--{flag} must lie in \[0, 1\], got 1.5$"):
        BenchConfig(**{name: 1.5})
    with pytest.raises(SelectgymError, match=f"--{flag} puts defects in the built-in suite, but --suite-dir"):
        BenchConfig(suite_dir=str(tmp_path), **{name: 0.2})
    BenchConfig(suite_dir=str(tmp_path), **{name: 0.0})


def test_bench_help_lists_the_flags(capsys):
    from selectgym.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "--noisy-answer-share" in out and "--pair-defect-share" in out


def test_the_suite_the_bench_builds_carries_the_defects_asked_for(tmp_path):
    bench = Bench(_small(tmp_path, noisy_answer_share=0.25, pair_defect_share=0.5), progress=False)
    suite = bench.pools()
    verif, pref = load_pool(suite / "verifiable.jsonl"), load_pool(suite / "preference.jsonl")
    assert sum(ex.meta["noisy_reward"] for ex in verif) == 10  # 0.25 * 40
    assert sum(ex.meta["pair_defect"] is not None for ex in pref) == 20
    plain = Bench(_small(tmp_path / "plain"), progress=False).pools()
    assert not any("noisy_reward" in ex.meta for ex in load_pool(plain / "verifiable.jsonl"))
    assert not any("pair_defect" in ex.meta for ex in load_pool(plain / "preference.jsonl"))


def test_picked_shares_read_the_labels_only_where_the_pool_has_them():
    def pool(metas):
        return Pool(tuple(Example(f"e{i}", [{"role": "user", "content": "?"}], answer="1", meta=m)
                          for i, m in enumerate(metas)), "verifiable")

    noisy = pool([{"useful": True, "noisy_reward": False}, {"useful": True, "noisy_reward": True},
                  {"useful": False, "noisy_reward": True}, {"useful": True, "noisy_reward": False}])
    assert picked_shares(noisy, ["e1", "e2", "e3"]) == {"useful_share": pytest.approx(2 / 3),
                                                       "noisy_share": pytest.approx(2 / 3)}
    pairs = pool([{"pair_defect": None}, {"pair_defect": "swapped"}, {"pair_defect": "near_identical"}])
    assert picked_shares(pairs, ["e0", "e1"]) == {"useful_share": 0.0, "pair_defect_share": 0.5}
    assert picked_shares(pool([{"useful": True}, {}]), ["e0", "e1"]) == {"useful_share": 0.5}


def test_held_out_pairs_are_the_eval_halfs_answers_over_wrong_ones(tmp_path):
    bench = Bench(_small(tmp_path, objective="dpo", split_target=True, validation_size=8), progress=False)
    bench.pools()
    evaluated = load_pool(bench._val_eval)
    pairs = bench.held_out_pairs()
    assert pairs.ids == evaluated.ids and len(pairs) == 4
    assert [ex.chosen for ex in pairs] == [ex.answer for ex in evaluated]
    assert all(ex.rejected != ex.chosen for ex in pairs)
    assert [ex.rejected for ex in bench.held_out_pairs()] == [ex.rejected for ex in pairs]  # same for every run
    assert not set(pairs.ids) & set(load_pool(bench._val_select).ids)


@pytest.mark.slow
def test_a_dpo_run_reports_preference_accuracy_and_the_defective_pair_share(tmp_path):
    bench = Bench(_small(tmp_path, objective="dpo", pair_defect_share=0.5), progress=False)
    bench.pools()
    pool = load_pool(bench.target_pool())
    ids = pool.ids[:4]
    metrics = bench.finetune(ids, seed=0, full=False)
    assert 0.0 <= metrics["preference_accuracy"] <= 1.0
    assert metrics["pair_defect_share"] == pytest.approx(
        np.mean([pool[pool.index(i)].meta["pair_defect"] is not None for i in ids]))
    assert "noisy_share" not in metrics  # the preference pool has no noisy-reward label


def test_only_the_suite_and_the_measuring_code_name_the_new_labels():
    """No selector, env, agent or trainer reads them: they are for measuring only."""
    from pathlib import Path

    import selectgym

    root = Path(selectgym.__file__).parent
    naming = {str(p.relative_to(root)) for p in root.rglob("*.py")
              if '"noisy_reward"' in p.read_text() or '"pair_defect"' in p.read_text()}
    assert naming == {"data/suite.py", "bench/harness.py"}
