"""The target split of a training pool: both halves hold every target family."""

from __future__ import annotations

import json

import pytest

from selectgym.agents.pools import TrainingPools, build_pool
from selectgym.data.suite import SuiteConfig
from selectgym.data.targets import SPLIT, split_target, write_target_halves
from selectgym.errors import SelectgymError


def test_halves_alternate_within_each_task():
    rows = [{"id": f"a{i}", "meta": {"task": "a"}} for i in range(4)] + [{"id": f"b{i}", "task": "b"} for i in range(3)]
    first, second = split_target(rows)  # a file sorted by family, as the suite writes it
    assert [r["id"] for r in first] == ["a0", "a2", "b0", "b2"]
    assert [r["id"] for r in second] == ["a1", "a3", "b1"]


def test_target_halves_are_written_and_a_single_problem_is_refused(tmp_path):
    src = tmp_path / "val.jsonl"
    src.write_text("".join(json.dumps({"id": f"a{i}", "meta": {"task": "a"}}) + "\n" for i in range(3)))
    write_target_halves(src, tmp_path / "x.jsonl", tmp_path / "y.jsonl")
    assert [json.loads(line)["id"] for line in (tmp_path / "x.jsonl").open()] == ["a0", "a2"]
    assert [json.loads(line)["id"] for line in (tmp_path / "y.jsonl").open()] == ["a1"]
    src.write_text(json.dumps({"id": "a0"}) + "\n")
    with pytest.raises(SelectgymError, match="at least 2 target problems"):
        write_target_halves(src, tmp_path / "x.jsonl", tmp_path / "y.jsonl")


def test_a_pool_built_with_the_old_split_is_rebuilt(tmp_path):
    pools = TrainingPools(families={"basic_arithmetic": {}, "chain_sum": {}, "gcd": {}}, proxy="tiny", proj_dim=16)
    suite = SuiteConfig(seed=1, size=30, validation_size=8, target_tasks={"basic_arithmetic": {}, "chain_sum": {}},
                        off_target_tasks={"gcd": {}})
    _, val_a, val_b = build_pool(suite, tmp_path, pools)
    tasks = [[json.loads(line)["meta"]["task"] for line in (tmp_path / "suite" / f"val_{h}.jsonl").open()]
             for h in "ab"]
    assert sorted(tasks[0]) == sorted(tasks[1]) == ["basic_arithmetic"] * 2 + ["chain_sum"] * 2
    assert len(val_a) == len(val_b) == 4
    done = tmp_path / "done.json"
    assert json.loads(done.read_text())["split"] == SPLIT
    done.write_text(json.dumps({"suite": {}}))  # as an older build left it
    (tmp_path / "suite" / "val_a.jsonl").write_text("")
    build_pool(suite, tmp_path, pools)
    assert len((tmp_path / "suite" / "val_a.jsonl").read_text().splitlines()) == 4


def test_a_target_splits_in_three_alternating_within_each_task():
    rows = [{"id": f"{t}{i}", "meta": {"task": t}} for t in ("a", "b") for i in range(4)]
    parts = split_target(rows, 3)
    assert [[r["id"] for r in p] for p in parts] == [["a0", "a3", "b0", "b3"], ["a1", "b1"], ["a2", "b2"]]
    with pytest.raises(SelectgymError, match="2 or more parts"):
        split_target(rows, 1)
