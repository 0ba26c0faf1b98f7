import math
import re

import numpy as np
import pytest

from selectgym.errors import SelectgymError
from selectgym.selectors.gradalign import GradAlignSelector

RNG = np.random.default_rng


def score(make_table, mode, val=None, **train):
    return GradAlignSelector(mode=mode).score(make_table(**train), val, RNG(0))


def test_sim_and_dot_against_pooled_validation_gradient(make_table):
    train = dict(grpo_grad=[[3, 4], [1, 0], [5, 0], [-1, 0]], grpo_signal=[1, 1, 0, 1],
                 pass_rate=[0.5, 0.25, 1.0, 0.75])
    val = make_table(grpo_grad=[[1, 0], [1, 0]])
    # row 2 points exactly along g_V but its rollouts had no reward signal: score 0
    assert score(make_table, "sim", val, **train) == pytest.approx([0.6, 1.0, 0.0, -1.0])
    assert score(make_table, "dot", val, **train) == pytest.approx([3.0, 1.0, 0.0, -1.0])
    sel = GradAlignSelector(mode="sim").select(make_table(**train), val, 2, seed=0)
    assert sel.ids == ["ex1", "ex0"]
    assert GradAlignSelector(mode="dot").select(make_table(**train), val, 2, seed=0).ids == ["ex0", "ex1"]


def test_validation_gradient_is_the_normalised_sum_of_rows(make_table):
    # sum (1, 3) -> (1, 3)/sqrt10; the mean of unit rows would point along (1, 1) instead
    val = make_table(grpo_grad=[[1, 0], [0, 3]])
    train = dict(grpo_grad=[[1, 0], [0, 2]], grpo_signal=[1, 1], pass_rate=[0.5, 0.5])
    s10 = math.sqrt(10)
    assert score(make_table, "dot", val, **train) == pytest.approx([1 / s10, 6 / s10])
    assert score(make_table, "sim", val, **train) == pytest.approx([1 / s10, 3 / s10])


def test_align_uses_the_rounds_own_candidates_without_validation(make_table):
    # pooled over candidates with signal: (1,0)+(0,1)+(1,1) = (2,2); the no-signal (9,0) stays out
    train = dict(grpo_grad=[[1, 0], [0, 1], [1, 1], [9, 0]], grpo_signal=[1, 1, 1, 0],
                 pass_rate=[0.5, 0.5, 0.5, 0.0])
    r2 = math.sqrt(0.5)
    assert score(make_table, "align", None, **train) == pytest.approx([r2, r2, 1.0, 0.0])


def _learnalign_reference(grads, signal, p):
    n = len(grads)
    v = [pi * (1 - pi) for pi in p]

    def cos(a, b):
        na, nb = math.hypot(*a), math.hypot(*b)
        return 0.0 if na == 0 or nb == 0 else (a[0] * b[0] + a[1] * b[1]) / (na * nb)

    return [0.0 if not signal[i] else sum(v[i] * v[j] * cos(grads[i], grads[j]) for j in range(n)) / n
            for i in range(n)]


def test_learnalign_weights_by_learnability(make_table):
    grads, signal, p = [[1, 0], [0, 1], [1, 1], [2, 0]], [1, 1, 1, 0], [0.5, 0.5, 0.25, 0.0]
    got = score(make_table, "learnalign", None, grpo_grad=grads, grpo_signal=signal, pass_rate=p)
    # hand value for row 0: V0 (V0*1 + V1*0 + V2*cos45 + V3*1) / 4 with V = (.25, .25, .1875, 0)
    assert got[0] == pytest.approx(0.25 * (0.25 + 0.1875 * math.sqrt(0.5)) / 4)
    assert got == pytest.approx(_learnalign_reference(grads, signal, p))
    # the same gradients with a harder row 2 (p = 0.9 -> V = 0.09) lose rank
    p2 = [0.5, 0.5, 0.9, 0.0]
    got2 = score(make_table, "learnalign", None, grpo_grad=grads, grpo_signal=signal, pass_rate=p2)
    assert got2 == pytest.approx(_learnalign_reference(grads, signal, p2))
    assert np.argmax(got) == 2 and got2[2] < got2[0]


def test_accgreedy_prefers_pass_rate_near_half(make_table):
    train = make_table(pass_rate=[0.1, 0.5, 0.6, 1.0, 0.45])
    sel = GradAlignSelector(mode="accgreedy").select(train, None, 5, seed=0)
    assert sel.ids == ["ex1", "ex4", "ex2", "ex0", "ex3"]


def test_sim_needs_validation_and_a_nonzero_target(make_table):
    train = make_table(grpo_grad=[[1, 0]], grpo_signal=[1], pass_rate=[0.5])
    with pytest.raises(SelectgymError, match="needs target"):
        GradAlignSelector().select(train, None, 1, seed=0)
    with pytest.raises(SelectgymError, match="pooled validation GRPO gradient is zero"):
        GradAlignSelector().select(train, make_table(grpo_grad=[[0, 0]]), 1, seed=0)
    with pytest.raises(SelectgymError, match="mode must be one of"):
        GradAlignSelector(mode="cosine")


def _pool(make_table, n, seed=0):
    rng = RNG(seed)
    return make_table(grpo_grad=rng.normal(size=(n, 3)), grpo_signal=np.ones(n), pass_rate=rng.uniform(size=n))


def test_rounds_keep_the_best_of_each_chunk(make_table):
    train, val = _pool(make_table, 12), make_table(grpo_grad=[[1.0, 0.5, 0.0]])
    sel = GradAlignSelector(chunk_size=4, q=2).select(train, val, 5, seed=3)
    rounds = sel.info["rounds"]
    assert [len(r["chunk"]) for r in rounds] == [4, 4, 4]
    assert [len(r["picked"]) for r in rounds] == [2, 2, 1]
    assert sorted(sum((r["chunk"] for r in rounds), [])) == sorted(train.ids)
    pos = {i: n for n, i in enumerate(train.ids)}
    for r in rounds:
        by_score = sorted(r["chunk"], key=lambda i: -sel.pool_scores[pos[i]])
        assert r["picked"] == by_score[:len(r["picked"])]
    assert sel.ids == sum((r["picked"] for r in rounds), [])
    # scores inside rounds match score() with the same seed, and the chunks come from a seeded shuffle
    assert GradAlignSelector(chunk_size=4, q=2).score(train, val, RNG(3)) == pytest.approx(sel.pool_scores)
    other = GradAlignSelector(chunk_size=4, q=2).select(train, val, 5, seed=4)
    assert other.info["rounds"][0]["chunk"] != rounds[0]["chunk"]


def test_budget_stops_the_rounds_and_errors_when_rounds_run_out(make_table):
    train, val = _pool(make_table, 12), make_table(grpo_grad=[[1.0, 0.5, 0.0]])
    sel = GradAlignSelector(chunk_size=4, q=2).select(train, val, 3, seed=0)
    assert [len(r["picked"]) for r in sel.info["rounds"]] == [2, 1]
    with pytest.raises(SelectgymError, match="more than 3 rounds"):
        GradAlignSelector(chunk_size=4, q=2).select(train, val, 7, seed=0)


def test_without_q_the_budget_spreads_by_chunk_size(make_table):
    train = _pool(make_table, 10)
    sel = GradAlignSelector(mode="accgreedy", chunk_size=4).select(train, None, 5, seed=0)
    assert [len(r["picked"]) for r in sel.info["rounds"]] == [2, 2, 1]
    whole = GradAlignSelector(mode="accgreedy").select(train, None, 3, seed=0)
    p = train.get("pass_rate")
    assert whole.ids == [train.ids[i] for i in np.argsort(np.abs(p - 0.5))[:3]]


def test_rand_draws_only_from_the_rounds_chunk(make_table):
    train = _pool(make_table, 20)
    first_pick_positions = np.zeros(5)
    for seed in range(300):
        sel = GradAlignSelector(mode="rand", chunk_size=5, q=5).select(train, None, 3, seed=seed)
        rounds = sel.info["rounds"]
        assert len(rounds) == 3
        for r in rounds:
            assert len(r["picked"]) == 1 and r["picked"][0] in r["chunk"]
        first_pick_positions[rounds[0]["chunk"].index(rounds[0]["picked"][0])] += 1
    assert first_pick_positions.min() > 30  # each chunk slot drawn about 60 times in 300
    same = GradAlignSelector(mode="rand", chunk_size=5, q=5)
    assert same.select(train, None, 3, seed=7).ids == same.select(train, None, 3, seed=7).ids


def test_schedule_divisibility_check_names_values_that_fit():
    GradAlignSelector(chunk_size=5120, q=20, batch_size=128, iters_per_select=10)  # the paper's example
    with pytest.raises(SelectgymError) as err:
        GradAlignSelector(chunk_size=100, q=4, batch_size=8, iters_per_select=10)
    msg = str(err.value)
    assert "% 100 = 20" in msg and "\n" not in msg
    chunks = [int(c) for c in re.search(r"chunk_size in \[([\d, ]+)\]", msg).group(1).split(",")]
    assert chunks == [40, 64, 80] and all(320 % c == 0 for c in chunks)
    iters = int(re.search(r"iters_per_select=(\d+)", msg).group(1))
    batch = int(re.search(r"batch_size=(\d+)", msg).group(1))
    assert (iters, batch) == (25, 10)
    assert (4 * 8 * iters) % 100 == 0 and (4 * batch * 10) % 100 == 0
    with pytest.raises(SelectgymError, match="needs all of"):
        GradAlignSelector(chunk_size=100, batch_size=8)
    with pytest.raises(SelectgymError, match="use q <= 4"):
        GradAlignSelector(chunk_size=4, q=5)
