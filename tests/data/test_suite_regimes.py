"""The suite's opt-in regime defects: noisy reference answers (GRPO) and swapped / near-identical pairs (DPO).

Off by default, and then the files are byte for byte what they were before the options existed.
"""

from __future__ import annotations

import hashlib

import pytest

from selectgym.data import load_pool
from selectgym.data.pool import Example, Pool
from selectgym.data.suite import SuiteConfig, build_suite, make_suite, wrong_answer_pairs
from selectgym.data.verify import score
from selectgym.errors import SelectgymError

#: sha256 of every file make_suite wrote before noisy_answer_share and pair_defect_share existed
BEFORE = {
    "default": {
        "manifest": "d080f5a9183b68ec4de9b970581e0649ffac862f9f78140c8ae284c1fdf7a005",
        "preference": "2ed69e3ca41cd1601749afcf67f8d3cbbfeabf3145a2664c4509ef6b99285d98",
        "sft": "7c647f3ec22212bcf7e3c74315b1fc4e2ca05579e586d0ba5e05ee3e63aee5d2",
        "validation": "00e9cff29c86dd25fbb61ec7b47e2fe2b0942460936710c4d4b239182f487a6e",
        "verifiable": "852fcff041c022c2421d3432de81cd722f8ea23a3daef5b668860ef074889005",
    },
    "small": {
        "manifest": "2a46f22f6f02a4a39d5588aa6b084fe793409287796a4d23a3e06b88a343c061",
        "preference": "501fdc79f374aed6ba038b0bc7a81ec1d38e928f15cb632e33f2a78a16d637df",
        "sft": "2bd13467962a0787d541bf6ca40924dbd7db97a7ee0f326f0b413502e5c7d1be",
        "validation": "d05e4f115f3213328c0f1cc70115b6442346d7eadbb86c07c4b4cd3e2f95fa16",
        "verifiable": "d05bf6139ba26f9565ba14cdee83bc181d4444a8d43e2b709d50d3de225aac51",
    },
}
CONFIGS = {"default": {}, "small": {"size": 40, "validation_size": 8, "seed": 3}}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_with_the_options_off_every_file_is_byte_identical_to_before(tmp_path, name):
    paths = make_suite(tmp_path, SuiteConfig(**CONFIGS[name]))
    got = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in paths.items()}
    assert got == BEFORE[name]


SMALL = {"seed": 5, "size": 100, "validation_size": 8}


@pytest.fixture(scope="module")
def plain():
    return build_suite(SuiteConfig(**SMALL))


def test_noisy_answers_corrupt_the_given_share_of_right_answers_and_nothing_else(plain, tmp_path):
    suite = build_suite(SuiteConfig(**SMALL, noisy_answer_share=0.2))
    for name in ("sft", "preference", "validation"):
        assert suite[name] == plain[name], name  # only the verifiable pool changes
    noisy = [r for r in suite["verifiable"] if r["meta"]["noisy_reward"]]
    assert len(noisy) == 20  # round(0.2 * 100)
    assert all("noisy_reward" in r["meta"] for r in suite["verifiable"])
    assert all(r["meta"]["defect"] in ("none", "duplicate") for r in noisy)  # drawn from right answers
    make_suite(tmp_path, SuiteConfig(**SMALL, noisy_answer_share=0.2))
    verif, before = load_pool(tmp_path / "verifiable.jsonl"), {r["id"]: r for r in plain["verifiable"]}
    for ex in verif:
        old = before[ex.id]
        if not ex.meta["noisy_reward"]:
            assert ex.answer == old["answer"] and ex.meta["entry"] == old["meta"]["entry"]
            continue
        assert ex.answer != old["answer"] and ex.meta["entry"]["answer"] == ex.answer
        # the verifier now rewards the wrong answer, and the right one less (some families give partial credit)
        assert score(ex, ex.answer) == 1.0 and score(ex, old["answer"]) < 1.0


def test_pair_defects_are_half_swapped_half_near_identical(plain):
    suite = build_suite(SuiteConfig(**SMALL, pair_defect_share=0.3))
    for name in ("sft", "verifiable", "validation"):
        assert suite[name] == plain[name], name
    kinds = [r["meta"]["pair_defect"] for r in suite["preference"]]
    assert kinds.count("swapped") == 15 and kinds.count("near_identical") == 15 and kinds.count(None) == 70
    for new, old, sft in zip(suite["preference"], plain["preference"], suite["sft"], strict=True):
        kind = new["meta"]["pair_defect"]
        assert "pair_defect" not in sft["meta"]  # the sft record's meta is not the preference record's
        if kind is None:
            assert (new["chosen"], new["rejected"]) == (old["chosen"], old["rejected"])
            continue
        assert sft["meta"]["defect"] in ("none", "duplicate")  # drawn from right pairs
        if kind == "swapped":
            assert (new["chosen"], new["rejected"]) == (old["rejected"], old["chosen"])
        else:
            assert new["chosen"] == old["chosen"] and len(new["rejected"]) == len(new["chosen"])
            assert sum(a != b for a, b in zip(new["chosen"], new["rejected"], strict=True)) == 1


def test_same_seed_same_defects_and_the_options_draw_independently():
    a = build_suite(SuiteConfig(**SMALL, noisy_answer_share=0.2, pair_defect_share=0.3))
    b = build_suite(SuiteConfig(**SMALL, noisy_answer_share=0.2, pair_defect_share=0.3))
    assert a == b
    only_noisy = build_suite(SuiteConfig(**SMALL, noisy_answer_share=0.2))
    only_pairs = build_suite(SuiteConfig(**SMALL, pair_defect_share=0.3))
    assert a["verifiable"] == only_noisy["verifiable"] and a["preference"] == only_pairs["preference"]
    other = build_suite(SuiteConfig(**{**SMALL, "seed": 6}, noisy_answer_share=0.2))
    assert [r["meta"]["noisy_reward"] for r in other["verifiable"]] != \
        [r["meta"]["noisy_reward"] for r in a["verifiable"]]


def test_a_share_above_the_right_answers_corrupts_all_of_them():
    suite = build_suite(SuiteConfig(**SMALL, noisy_answer_share=1.0, pair_defect_share=1.0))
    right = [r["meta"]["defect"] in ("none", "duplicate") for r in suite["sft"]]
    assert [r["meta"]["noisy_reward"] for r in suite["verifiable"]] == right
    assert [r["meta"]["pair_defect"] is not None for r in suite["preference"]] == right


@pytest.mark.parametrize("name", ["noisy_answer_share", "pair_defect_share"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_shares_outside_0_1_are_refused(name, value):
    with pytest.raises(SelectgymError, match=rf"^{name} must lie in \[0, 1\], got {value}$"):
        SuiteConfig(**{name: value})


def test_manifest_records_the_options_only_when_on(tmp_path):
    import json

    make_suite(tmp_path, SuiteConfig(**SMALL, pair_defect_share=0.5))
    manifest = json.loads((tmp_path / "suite.json").read_text())
    assert manifest["config"]["pair_defect_share"] == 0.5 and "noisy_answer_share" not in manifest["config"]
    assert manifest["pair_defects"] == {"swapped": 25, "near_identical": 25} and "noisy_reward" not in manifest


def test_wrong_answer_pairs_put_the_reference_over_a_seeded_wrong_answer():
    pool = Pool(tuple(Example(f"v{i}", [{"role": "user", "content": f"{i} + 1?"}], answer=a, meta={"task": "t"})
                      for i, a in enumerate(["2", "tac", "17"])), "verifiable", "val.jsonl")
    pairs = wrong_answer_pairs(pool, seed=0)
    assert pairs.format == "preference" and pairs.ids == pool.ids
    assert [ex.chosen for ex in pairs] == ["2", "tac", "17"]
    assert all(ex.rejected != ex.chosen for ex in pairs)
    assert [ex.prompt for ex in pairs] == [ex.prompt for ex in pool]
    assert [ex.rejected for ex in wrong_answer_pairs(pool, seed=0)] == [ex.rejected for ex in pairs]
    blank = Pool((Example("b", [{"role": "user", "content": "?"}], answer=" "),), "verifiable", "val.jsonl")
    with pytest.raises(SelectgymError, match="1 examples have no reference answer"):
        wrong_answer_pairs(blank, seed=0)
