"""Subtask balance: quotas, the balanced order and the nearest subtask, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from selectgym.data.pool import Example
from selectgym.errors import SelectgymError
from selectgym.selectors.coverage import (
    balanced_order,
    nearest_subtask,
    next_subtask,
    subtask_affinity,
    subtask_labels,
    subtask_quotas,
)
from selectgym.selectors.less import LessSelector


def test_quotas_follow_the_target_shares_and_sum_to_the_budget():
    labels = ["a", "a", "a", "b"]
    assert list(subtask_quotas(labels, ["a", "b"], 4)) == [3, 1]
    # exact shares 2.25 / 0.75: floors 2 / 0, the larger remainder (b) gets the last pick
    assert list(subtask_quotas(labels, ["a", "b"], 3)) == [2, 1]
    assert list(subtask_quotas(labels, ["a", "b"], 0)) == [0, 0]


def test_balanced_order_takes_each_subtask_in_proportion():
    scores = np.array([5.0, 4, 3, 2, 1, 0])
    nearest = np.array([0, 0, 0, 0, 1, 1])
    # subtask 0 ranks rows 0..3 at 1/2, 2/2, 3/2, 4/2; subtask 1 rows 4, 5 at 1/1, 2/1; ties by score
    assert list(balanced_order(scores, nearest, np.array([2, 1]))) == [0, 1, 4, 2, 3, 5]
    # the plain top 3 would be rows 0, 1, 2: none of subtask 1


def test_a_subtask_short_of_rows_leaves_its_picks_to_the_others():
    order = balanced_order(np.array([3.0, 2, 1, 0]), np.array([0, 0, 0, 1]), np.array([1, 2]))
    assert set(order[:3]) == {3, 0, 1}


def test_next_subtask_is_the_one_furthest_behind_with_rows_left():
    assert next_subtask(np.array([2, 0]), np.array([2, 1]), np.array([True, True])) == 1
    assert next_subtask(np.array([2, 0]), np.array([2, 1]), np.array([True, False])) == 0
    assert next_subtask(np.array([0, 0]), np.array([0, 0]), np.array([True, True])) is None


def test_affinity_is_the_z_scored_cosine_with_each_subtask_mean(make_table):
    train = make_table(grad=[[1, 0], [0, 1], [1, 1]])
    val = make_table(grad=[[2, 0], [1, 0], [0, 3]])
    affinity, names = subtask_affinity(train, val, ["a", "a", "b"])
    assert names == ["a", "b"]
    r2 = np.sqrt(0.5)
    col = np.array([1, 0, r2])  # cosines with a's unit mean (1, 0); b's (0, 1) gives (0, 1, r2)
    z = (col - col.mean()) / col.std()
    np.testing.assert_allclose(affinity[:, 0], z, atol=1e-6)
    np.testing.assert_allclose(affinity[:, 1], z[[1, 0, 2]], atol=1e-6)
    assert list(nearest_subtask(affinity)[:2]) == [0, 1]
    with pytest.raises(SelectgymError, match="3 validation rows"):
        subtask_affinity(train, val, ["a", "b"])


def test_less_balance_gives_the_smaller_subtask_its_share(make_table):
    train = make_table(grad_adam=[[1, 0.1], [1, 0.2], [1, 0.3], [-0.5, 1]])
    val = make_table(grad=[[1, 0], [1, 0], [0, 1], [0, 1]])
    labels = ["a", "a", "b", "b"]
    plain = LessSelector(subtasks=labels).select(train, val, 2, seed=0)
    balanced = LessSelector(subtasks=labels, balance=True).select(train, val, 2, seed=0)
    assert plain.ids == ["ex0", "ex1"]  # max over subtasks: 0.995, 0.981 beat the b row's 0.894
    assert balanced.ids == ["ex0", "ex3"]
    with pytest.raises(SelectgymError, match="subtask label"):
        LessSelector(balance=True).select(train, val, 2, seed=0)
    with pytest.raises(SelectgymError, match="true or false"):
        LessSelector(balance="yes")


def test_labels_come_from_the_file_top_level_or_meta():
    top = Example("v0", [], answer="1", raw={"task": "sum"})
    meta = Example("v1", [], answer="2", meta={"task": "gcd"})
    assert subtask_labels([top, meta]) == ["sum", "gcd"]
    with pytest.raises(SelectgymError, match="no 'task'"):
        subtask_labels([Example("v2", [], answer="3")])


def test_affinity_reads_embeddings_when_the_target_has_them(make_table):
    # the gradients say nothing (all alike); the embeddings put row 0 with "a" and row 1 with "b"
    train = make_table(grad=[[1, 0], [1, 0], [1, 0]], embedding=[[1, 0], [0, 1], [1, 1]])
    val = make_table(grad=[[1, 0], [1, 0]], embedding=[[1, 0], [0, 1]])
    affinity, _ = subtask_affinity(train, val, ["a", "b"])
    assert list(nearest_subtask(affinity)[:2]) == [0, 1]
    flat, _ = subtask_affinity(train, make_table(grad=[[1, 0], [1, 0]]), ["a", "b"])
    assert not flat.any()  # without target embeddings: gradients, which cannot tell these apart
