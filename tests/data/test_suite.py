import json

from selectgym.data import load_pool
from selectgym.data.suite import SuiteConfig, build_suite, make_suite
from selectgym.data.verify import extract_answer, score


def test_same_seed_same_files_other_seed_differs(tmp_path):
    cfg = SuiteConfig(seed=7, size=90, validation_size=8)
    a = make_suite(tmp_path / "a", cfg)
    b = make_suite(tmp_path / "b", SuiteConfig(seed=7, size=90, validation_size=8))
    for name in ("sft", "preference", "verifiable", "validation"):
        assert a[name].read_bytes() == b[name].read_bytes()
    other = build_suite(SuiteConfig(seed=8, size=90, validation_size=8))
    assert [r["instruction"] for r in other["sft"]] != [json.loads(x)["instruction"] for x in
                                                        a["sft"].read_text().splitlines()]


def test_labels_and_defects(suite_dir):
    pool = load_pool(suite_dir / "sft.jsonl")
    assert len(pool) == 120
    defects = {ex.meta["defect"] for ex in pool}
    assert defects == {"none", "wrong_answer", "truncated", "garbled", "duplicate"}
    val = load_pool(suite_dir / "validation.jsonl")
    target_tasks = {ex.meta["task"] for ex in val}
    for ex in pool:
        assert ex.meta["on_target"] == (ex.meta["task"] in target_tasks)
        assert ex.meta["useful"] == (ex.meta["clean"] and ex.meta["on_target"])
        assert ex.meta["clean"] == (ex.meta["defect"] == "none")
        correct = ex.meta["clean"] or ex.meta["defect"] == "duplicate"
        entry_answer = None
        if correct:
            entry_answer = ex.response
            assert ex.response.strip() != ""
        assert (entry_answer is not None) == correct
    # every duplicate repeats the content of some clean example
    contents = {(ex.prompt[0]["content"], ex.response) for ex in pool if ex.meta["clean"]}
    assert all((ex.prompt[0]["content"], ex.response) in contents for ex in pool if ex.meta["defect"] == "duplicate")


def test_three_pools_share_ids_and_preference_is_correct(suite_dir):
    sft = load_pool(suite_dir / "sft.jsonl")
    pref = load_pool(suite_dir / "preference.jsonl")
    verif = load_pool(suite_dir / "verifiable.jsonl")
    assert sft.ids == pref.ids == verif.ids
    assert pref.format == "preference" and verif.format == "verifiable"
    for s, p, v in zip(sft, pref, verif, strict=True):
        if s.meta["clean"]:
            assert p.chosen == s.response and p.rejected != s.response
            assert score(v, s.response) == 1.0
        if s.meta["defect"] == "wrong_answer":
            assert p.rejected != p.chosen and score(v, v.answer) == 1.0


def test_verifier_uses_reasoning_gym(suite_dir):
    val = load_pool(suite_dir / "validation.jsonl")
    ex = val[0]
    assert score(ex, ex.answer) == 1.0
    assert score(ex, f"The answer is {ex.answer}.\nmore text") == 1.0
    assert score(ex, "not a number") == 0.0
    assert extract_answer("\n  Answer: 42.\n") == "42"


def test_an_answer_the_task_scorer_cannot_parse_scores_zero():
    # reasoning-gym's prime_factorization scorer raises ValueError on a garbled answer; that is a wrong answer
    from selectgym.data.pool import Example

    entry = {"question": "Find the prime factorization of 12.", "answer": "2 × 2 × 3",
             "metadata": {"source_dataset": "prime_factorization", "number": 12, "factors": [2, 2, 3]}}
    ex = Example(id="p", prompt=[{"role": "user", "content": entry["question"]}], answer=entry["answer"],
                 meta={"task": "prime_factorization", "entry": entry})
    assert score(ex, "2 × 2 × 3") == 1.0
    assert score(ex, "VhW0b1P4AVL8l") == 0.0
