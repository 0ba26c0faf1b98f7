import math

import numpy as np
import pytest

from selectgym.errors import SelectgymError
from selectgym.selectors.less import LessSelector, aggregate_subtasks, checkpoint_weights
from selectgym.selectors.nice import NiceSelector

R2 = math.sqrt(0.5)


def test_less_adam_and_sgd_read_different_gradients(make_table):
    train = make_table(grad=[[1, 0], [0, 1]], grad_adam=[[0, 1], [1, 0]])
    val = make_table(grad=[[1, 0], [1, 1]])
    rng = np.random.default_rng(0)
    # row (1,0): cos with (1,0) = 1, with (1,1) = 1/sqrt2; row (0,1): 0 and 1/sqrt2
    sgd = LessSelector(gradient_type="sgd").score(train, val, rng)
    adam = LessSelector(gradient_type="adam").score(train, val, rng)
    assert sgd == pytest.approx([(1 + R2) / 2, R2 / 2])
    assert adam == pytest.approx([R2 / 2, (1 + R2) / 2])
    assert LessSelector(gradient_type="sgd").select(train, val, 1, seed=0).ids == ["ex0"]
    assert LessSelector().select(train, val, 1, seed=0).ids == ["ex1"]


def test_less_validation_gradients_are_never_adam(make_table):
    train = make_table(grad_adam=[[1, 0], [0, 1]])
    val = make_table(grad=[[1, 0]], grad_adam=[[0, 1]])
    assert LessSelector().score(train, val, np.random.default_rng(0)) == pytest.approx([1, 0])


def test_cosine_ignores_gradient_scale(make_table):
    train = make_table(grad_adam=[[10, 0], [0, 0.1]])
    val = make_table(grad=[[3, 4]])
    assert LessSelector().score(train, val, np.random.default_rng(0)) == pytest.approx([0.6, 0.8])


def test_checkpoints_weighted_by_normalised_mean_lr(make_table):
    meta = {"checkpoints": {"a": 3e-5, "b": 1e-5}}
    arrays = {"grad_adam@a": [[1, 0], [0, 1]], "grad_adam@b": [[0, 1], [1, 0]]}
    train = make_table(meta=meta, **arrays)
    val = make_table(**{"grad@a": [[1, 0]], "grad@b": [[1, 0]]})
    assert checkpoint_weights(train) == pytest.approx({"a": 0.75, "b": 0.25})
    scores = LessSelector().score(train, val, np.random.default_rng(0))
    assert scores == pytest.approx([0.75, 0.25])
    swapped = make_table(meta={"checkpoints": {"a": 1e-5, "b": 3e-5}}, **arrays)
    assert LessSelector().score(swapped, val, np.random.default_rng(0)) == pytest.approx([0.25, 0.75])


def test_checkpoint_errors(make_table):
    train = make_table(meta={"checkpoints": {"a": 0.0}}, **{"grad_adam@a": [[1, 0]]})
    with pytest.raises(SelectgymError, match="learning rates"):
        checkpoint_weights(train)
    train = make_table(meta={"checkpoints": {"a": 1.0}}, **{"grad_adam@a": [[1, 0]]})
    with pytest.raises(SelectgymError, match="'grad@a'"):
        LessSelector().score(train, make_table(grad=[[1, 0]]), np.random.default_rng(0))


# train rows (1,0), (0,1), (1,1); val rows (1,0) [A], (0.6,0.8) [A], (0,1) [B]
SUB_TRAIN = [[1, 0], [0, 1], [1, 1]]
SUB_VAL = [[1, 0], [0.6, 0.8], [0, 1]]


def test_subtasks_mean_within_then_max_across(make_table):
    train = make_table(grad_adam=SUB_TRAIN)
    val = make_table(grad=SUB_VAL, meta={"subtasks": ["A", "A", "B"]})
    scores = LessSelector().score(train, val, np.random.default_rng(0))
    a2 = (R2 + 1.4 * R2) / 2  # row (1,1): mean over A of 0.7071 and 0.98995
    assert scores == pytest.approx([0.8, 1.0, a2])
    assert LessSelector().select(train, val, 3, seed=0).ids == ["ex1", "ex2", "ex0"]
    plain = LessSelector().score(train, make_table(grad=SUB_VAL), np.random.default_rng(0))
    assert plain == pytest.approx([1.6 / 3, 1.8 / 3, (2 * R2 + 1.4 * R2) / 3])
    assert LessSelector().select(train, make_table(grad=SUB_VAL), 3, seed=0).ids == ["ex2", "ex1", "ex0"]


def test_subtask_option_overrides_meta_and_checks_length(make_table):
    train = make_table(grad_adam=SUB_TRAIN)
    val = make_table(grad=SUB_VAL, meta={"subtasks": ["A", "A", "B"]})
    one_each = LessSelector(subtasks=["x", "y", "z"]).score(train, val, np.random.default_rng(0))
    assert one_each == pytest.approx([1.0, 1.0, 1.4 * R2])
    with pytest.raises(SelectgymError, match="2 subtask labels for 3 validation rows"):
        LessSelector(subtasks=["A", "B"]).score(train, val, np.random.default_rng(0))
    assert aggregate_subtasks(np.array([[1.0, 3.0, -1.0]]), ["b", "b", "a"]) == pytest.approx([2.0])


def test_nice_uses_policy_gradients(make_table):
    train = make_table(grad_adam=[[1, 0], [0, 1]], grad=[[0, 1], [1, 0]])
    val = make_table(grad=[[1, 0]], pg_grad=[[0.2, 0.9]])
    assert LessSelector().select(train, val, 1, seed=0).ids == ["ex0"]
    assert NiceSelector().select(train, val, 1, seed=0).ids == ["ex1"]
    scores = NiceSelector().score(train, val, np.random.default_rng(0))
    norm = math.hypot(0.2, 0.9)
    assert scores == pytest.approx([0.2 / norm, 0.9 / norm])
    raw = NiceSelector(gradient_type="sgd").score(train, val, np.random.default_rng(0))
    assert raw == pytest.approx([0.9 / norm, 0.2 / norm])


def test_nice_checkpoints_read_pg_grad_at_checkpoint(make_table):
    train = make_table(meta={"checkpoints": {"1": 1.0, "2": 1.0}},
                       **{"grad_adam@1": [[1, 0], [0, 1]], "grad_adam@2": [[1, 0], [1, 0]]})
    val = make_table(**{"pg_grad@1": [[0, 1]], "pg_grad@2": [[1, 0]]})
    assert NiceSelector().score(train, val, np.random.default_rng(0)) == pytest.approx([0.5, 1.0])


def test_missing_features_and_validation(make_table):
    train = make_table(grad_adam=[[1, 0]])
    with pytest.raises(SelectgymError, match="no 'pg_grad'"):
        NiceSelector().score(train, make_table(grad=[[1, 0]]), np.random.default_rng(0))
    with pytest.raises(SelectgymError, match="needs target"):
        LessSelector().select(train, None, 1, seed=0)
    with pytest.raises(SelectgymError, match="gradient_type"):
        LessSelector(gradient_type="rmsprop")


def test_mismatched_projection_dims(make_table):
    with pytest.raises(SelectgymError, match="same projection"):
        LessSelector().score(make_table(grad_adam=[[1, 0, 0]]), make_table(grad=[[1, 0]]), np.random.default_rng(0))


def test_zero_gradient_scores_zero_not_nan(make_table):
    train = make_table(grad_adam=[[0, 0], [1, 0]])
    scores = LessSelector().select(train, make_table(grad=[[1, 0]]), 2, seed=0)
    assert scores.ids == ["ex1", "ex0"] and scores.scores == pytest.approx([1, 0])


# -- loss_weight: the z-scored LESS score minus the z-scored proxy loss -------------------------------------------
S3 = math.sqrt(3)
R15 = math.sqrt(1.5)


def _loss_case(make_table, loss=(0.0, 1.0, 2.0)):
    # cosines with the target (1, 0): 1, 0, 0.5 -> z = (sqrt(1.5), -sqrt(1.5), 0); loss (0, 1, 2) -> z = (-R15, 0, R15)
    return make_table(grad=[[1, 0], [0, 1], [1, S3]], loss=list(loss)), make_table(grad=[[1, 0]])


def test_loss_weight_subtracts_the_z_scored_loss(make_table):
    train, val = _loss_case(make_table)
    rng = np.random.default_rng(0)
    assert LessSelector(gradient_type="sgd").score(train, val, rng) == pytest.approx([1, 0, 0.5])
    one = LessSelector(gradient_type="sgd", loss_weight=1).score(train, val, rng)
    assert one == pytest.approx([2 * R15, -R15, -R15])
    two = LessSelector(gradient_type="sgd", loss_weight=2.0).score(train, val, rng)
    assert two == pytest.approx([3 * R15, -R15, -2 * R15])
    # the loss moves the second pick from the half-aligned, high-loss row to the unaligned, low-loss one
    assert LessSelector(gradient_type="sgd").select(train, val, 2, seed=0).ids == ["ex0", "ex2"]
    assert LessSelector(gradient_type="sgd", loss_weight=2.0).select(train, val, 2, seed=0).ids == ["ex0", "ex1"]
    nice = NiceSelector(gradient_type="sgd", loss_weight=1).score(train, make_table(pg_grad=[[1, 0]]), rng)
    assert nice == pytest.approx(one)  # NICE inherits it


def test_loss_weight_checks_its_value_and_the_loss(make_table):
    assert LessSelector(loss_weight=np.float32(0.5)).loss_weight == 0.5  # numpy scalars are numbers too
    for bad in ("1", True, float("nan"), None, 10**400):
        with pytest.raises(SelectgymError, match="loss_weight must be a finite number"):
            LessSelector(loss_weight=bad)
    train, val = _loss_case(make_table, loss=(0.0, float("nan"), 2.0))
    with pytest.raises(SelectgymError, match=r"NaN or inf in .*'loss': 1 row\(s\), e\.g\. 'ex1'.*skip_nonfinite"):
        LessSelector(gradient_type="sgd", loss_weight=1).score(train, val, np.random.default_rng(0))
    kept = LessSelector(gradient_type="sgd", loss_weight=1, skip_nonfinite=True).score(train, val,
                                                                                       np.random.default_rng(0))
    assert kept[1] == -np.inf and kept[[0, 2]] == pytest.approx([2.0, -2.0])  # z over the two rows left: +-1 each
    with pytest.raises(SelectgymError, match="loss"):  # a table without the loss feature says so
        LessSelector(gradient_type="sgd", loss_weight=1).score(make_table(grad=[[1, 0]]), val,
                                                              np.random.default_rng(0))
