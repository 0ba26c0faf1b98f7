"""The HumanEval mix: a labelled pool of another kind (code beside off-target reasoning problems)."""

from __future__ import annotations

from collections import Counter

from selectgym.data.humaneval import humaneval_mix, humaneval_pool


def test_target_problems_never_enter_the_pool_and_defects_are_what_they_say():
    mix = humaneval_mix(seed=3, validation_size=40, defect_rate=0.3, off_target=20)
    solutions = {ex.id: ex.response for ex in humaneval_pool()}
    val_ids = {r["id"] for r in mix["validation"]}
    code = [r for r in mix["sft"] if r["meta"]["task"] == "humaneval"]
    assert len(val_ids) == 40 and len(code) == 164 - 40
    assert not val_ids & {r["id"].removesuffix("-train") for r in code}
    assert all(r["output"] == solutions[r["id"]] for r in mix["validation"])
    kinds = Counter(r["meta"]["defect"] for r in code)
    assert kinds["none"] == 124 - 37 and kinds["wrong_answer"] + kinds["truncated"] + kinds["garbled"] == 37
    for r in code:
        own = solutions[r["id"].removesuffix("-train")]
        if r["meta"]["defect"] == "none":
            assert r["output"] == own and r["meta"]["useful"]
        else:
            assert r["output"] != own and not r["meta"]["useful"]
            if r["meta"]["defect"] == "garbled":
                assert sorted(r["output"]) == sorted(own)
            if r["meta"]["defect"] == "truncated":
                assert own.startswith(r["output"])
    off = [r for r in mix["sft"] if r["meta"]["task"] != "humaneval"]
    assert len(off) == 20 and not any(r["meta"]["on_target"] or r["meta"]["useful"] for r in off)
    assert humaneval_mix(seed=3, validation_size=40, off_target=20) == mix  # deterministic for a seed
