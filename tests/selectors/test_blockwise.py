"""Blockwise scoring over a lazily opened store against the whole-array float64 reference, and NaN/inf rows."""

import logging

import numpy as np
import pytest

import selectgym.proxies.table as table_mod
from selectgym.errors import SelectgymError
from selectgym.proxies.store import FeatureStore
from selectgym.proxies.table import DiskArray, FeatureTable
from selectgym.proxies.vectors import cosine_matrix, normalise_rows
from selectgym.selectors.base import top_k
from selectgym.selectors.dpo_gap import DpoGapSelector
from selectgym.selectors.gradalign import GradAlignSelector, pooled_direction
from selectgym.selectors.less import LessSelector, aggregate_subtasks, checkpoint_weights
from selectgym.selectors.nice import NiceSelector

N, M, D = 90, 7, 24


def _arrays(rng):
    train = {"grad": rng.normal(size=(N, D)), "grad_adam": rng.normal(size=(N, D)),
             "grad_adam@c1": rng.normal(size=(N, D)), "grad_adam@c2": rng.normal(size=(N, D)),
             "grpo_grad": rng.normal(size=(N, D)), "grpo_signal": (rng.random(N) > 0.2).astype(np.float64),
             "pass_rate": rng.random(N), "dpo_gap": rng.normal(size=N)}
    for name in ("grad_adam", "grad_adam@c1", "grad_adam@c2"):
        train[name][3] = 0.0  # a zero gradient scores 0
    val = {name: rng.normal(size=(M, D)) for name in ("grad", "pg_grad", "grad@c1", "grad@c2", "pg_grad@c1",
                                                      "pg_grad@c2")}
    val["grpo_grad"] = rng.normal(size=(M, D)) + 0.5
    return ({k: v.astype(np.float32) for k, v in train.items()}, {k: v.astype(np.float32) for k, v in val.items()})


def _store(tmp_path, train_arrays, val_arrays, meta=None, shard_rows=25):
    """A store with several shards per table, as `selectgym features` writes it."""
    store = FeatureStore.create(tmp_path, {"t": 1}, meta or {})
    ids = [f"ex{i}" for i in range(N)]
    starts = range(0, N, shard_rows)
    for s, start in enumerate(starts):
        rows = slice(start, start + shard_rows)
        store.write_shard("train", s, ids[rows], {k: v[rows] for k, v in train_arrays.items()})
    store.write_shard("val", 0, [f"v{j}" for j in range(M)], val_arrays)
    store.mark_complete({"train": len(starts), "val": 1})
    return store


@pytest.fixture()
def small_blocks(monkeypatch):
    """Blocks of 4 rows at D = 24, so every scorer crosses many blocks and every shard boundary."""
    monkeypatch.setattr(table_mod, "BLOCK_BYTES", 4 * D * 4)


def _less_reference(train, val, tfeat, vfeat, labels=None):
    """The whole-array float64 LESS score, as selectors computed it before scoring in blocks."""
    weights = checkpoint_weights(train)
    pairs = ([(tfeat, vfeat, 1.0)] if weights is None else
             [(f"{tfeat}@{c}", f"{vfeat}@{c}", w) for c, w in weights.items()])
    sim = sum(w * cosine_matrix(np.asarray(train.get(a)), np.asarray(val.get(b))) for a, b, w in pairs)
    return aggregate_subtasks(sim, labels)


def _select_reference(scores, k, seed):
    rng = np.random.default_rng(seed)
    return top_k(scores, k, rng)


@pytest.mark.parametrize("meta", [{}, {"checkpoints": {"c1": 3e-5, "c2": 1e-5}}])
@pytest.mark.parametrize("cls", [LessSelector, NiceSelector])
def test_less_nice_blockwise_equal_whole_reference(tmp_path, small_blocks, cls, meta):
    train_arrays, val_arrays = _arrays(np.random.default_rng(0))
    store = _store(tmp_path, train_arrays, val_arrays, meta)
    train, val = store.table("train"), store.table("val")
    assert isinstance(train.get("grad_adam"), DiskArray) and isinstance(train.get("dpo_gap"), np.ndarray)
    labels = ["a", "b", "a", "b", "b", "a", "c"]
    for subtasks in (None, labels):
        selector = cls(subtasks=subtasks)
        got = selector.select(train, val, 20, seed=3)
        want = _less_reference(train, val, "grad_adam", selector.val_feature, subtasks)
        np.testing.assert_allclose(got.pool_scores, want, rtol=0, atol=2e-6)
        assert got.pool_scores[3] == 0.0
        assert got.ids == [train.ids[i] for i in _select_reference(want, 20, 3)]
        eager = cls(subtasks=subtasks).select(store.table("train", lazy=False), store.table("val", lazy=False), 20, 3)
        assert eager.ids == got.ids
        np.testing.assert_allclose(eager.pool_scores, got.pool_scores, rtol=0, atol=1e-6)


def _gradalign_reference(train, val, mode, chunks):
    """GradAlign's per-round scores computed on whole float64 arrays, as before blockwise scoring."""
    grads_all = np.asarray(train.get("grpo_grad"), dtype=np.float64)
    signal_all = np.asarray(train.get("grpo_signal")) > 0
    p_all = np.asarray(train.get("pass_rate"), dtype=np.float64)
    val_dir = pooled_direction(val.get("grpo_grad")) if mode in ("sim", "dot") else None
    scores = np.zeros(len(train))
    for chunk in chunks:
        grads, signal = grads_all[chunk], signal_all[chunk]
        if mode == "sim":
            s = normalise_rows(grads) @ val_dir
        elif mode == "dot":
            s = grads @ val_dir
        elif mode == "align":
            s = normalise_rows(grads) @ pooled_direction(grads[signal])
        else:
            v = p_all[chunk] * (1 - p_all[chunk])
            unit = normalise_rows(grads)
            s = v * (unit @ (v @ unit)) / len(chunk)
        scores[chunk] = np.where(signal, s, 0.0)
    return scores


@pytest.mark.parametrize("mode", ["sim", "dot", "align", "learnalign"])
def test_gradalign_rounds_blockwise_equal_whole_reference(tmp_path, small_blocks, mode):
    train_arrays, val_arrays = _arrays(np.random.default_rng(1))
    store = _store(tmp_path, train_arrays, val_arrays)
    train, val = store.table("train"), store.table("val")
    selector = GradAlignSelector(mode=mode, chunk_size=30, q=3)
    got = selector.select(train, val, 25, seed=5)
    chunks = selector.rounds(N, np.random.default_rng(5))
    want = _gradalign_reference(train, val, mode, chunks)
    scale = np.abs(want).max()
    np.testing.assert_allclose(got.pool_scores, want, rtol=0, atol=2e-6 * max(scale, 1.0))
    eager = GradAlignSelector(mode=mode, chunk_size=30, q=3).select(store.table("train", lazy=False),
                                                                    store.table("val", lazy=False), 25, seed=5)
    assert got.ids == eager.ids and len(got.ids) == 25
    rng = np.random.default_rng(5)
    rng.permutation(N)
    picked = [i for chunk, quota in zip(chunks, selector.quotas(chunks, 25), strict=True)
              for i in chunk[top_k(want[chunk], quota, rng)]]
    assert got.ids == [train.ids[i] for i in picked]


# NaN / inf --------------------------------------------------------------------------------------------

def _with(arrays, name, row, value):
    out = {k: v.copy() for k, v in arrays.items()}
    out[name][row] = value
    return out


CASES = [  # (selector factory, table side, array, selection without the bad rows)
    (lambda **kw: LessSelector(**kw), "train", "grad_adam"),
    (lambda **kw: LessSelector(**kw), "val", "grad"),
    (lambda **kw: NiceSelector(**kw), "train", "grad_adam"),
    (lambda **kw: NiceSelector(**kw), "val", "pg_grad"),
    (lambda **kw: GradAlignSelector(mode="sim", chunk_size=30, **kw), "train", "grpo_grad"),
    (lambda **kw: GradAlignSelector(mode="sim", chunk_size=30, **kw), "val", "grpo_grad"),
    (lambda **kw: GradAlignSelector(mode="align", chunk_size=30, **kw), "train", "grpo_grad"),
    (lambda **kw: DpoGapSelector(**kw), "train", "dpo_gap"),
]


@pytest.mark.parametrize(("make", "side", "array"), CASES)
def test_nonfinite_feature_is_an_error_naming_table_array_rows(tmp_path, small_blocks, make, side, array):
    train_arrays, val_arrays = _arrays(np.random.default_rng(2))
    bad_rows = [5, 41, 77] if side == "train" else [2]
    for i, r in enumerate(bad_rows):
        if side == "train":
            train_arrays = _with(train_arrays, array, r, np.nan if i % 2 == 0 else np.inf)
        else:
            val_arrays = _with(val_arrays, array, r, np.nan)
    store = _store(tmp_path, train_arrays, val_arrays)
    train, val = store.table("train"), store.table("val")
    first = "ex5" if side == "train" else "v2"
    with pytest.raises(SelectgymError, match=rf"NaN or inf in table '{side}' of .*'{array}': "
                                             rf"{len(bad_rows)} row\(s\), e\.g\. '{first}'.*skip_nonfinite=True"):
        make().select(train, val, 10, seed=0)


@pytest.mark.parametrize(("make", "side", "array"), CASES)
def test_skip_nonfinite_leaves_rows_out_with_a_counted_warning(tmp_path, small_blocks, caplog, make, side, array):
    train_arrays, val_arrays = _arrays(np.random.default_rng(2))
    bad_rows = [5, 41, 77] if side == "train" else [2]
    for r in bad_rows:
        if side == "train":
            train_arrays = _with(train_arrays, array, r, np.inf if array == "dpo_gap" else np.nan)
        else:
            val_arrays = _with(val_arrays, array, r, np.nan)
    store = _store(tmp_path / "bad", train_arrays, val_arrays)
    train, val = store.table("train"), store.table("val")
    with caplog.at_level(logging.WARNING, logger="selectgym.proxies.vectors"):
        rounds = isinstance(make(), GradAlignSelector)  # a round keeps chunk_size // q rows
        budget = N - len(bad_rows) if side == "train" and not rounds else 10
        got = make(skip_nonfinite=True).select(train, val, budget, seed=0)
    assert f"leaving out {len(bad_rows)} of" in caplog.text
    if side == "train":
        assert not {f"ex{r}" for r in bad_rows} & set(got.ids)
        assert np.isneginf(got.pool_scores[bad_rows]).all() and np.isfinite(np.delete(got.pool_scores, bad_rows)).all()
        with pytest.raises(SelectgymError, match=r"only \d+ are left after skipping rows with NaN"):
            make(skip_nonfinite=True).select(train, val, N, seed=0)
    else:  # the same as a validation table without that row
        clean = {k: np.delete(v, bad_rows, axis=0) for k, v in val_arrays.items()}
        val_clean = FeatureTable([f"v{j}" for j in range(M) if j not in bad_rows], clean)
        want = make().select(train, val_clean, 10, seed=0)
        assert got.ids == want.ids
        np.testing.assert_allclose(got.pool_scores, want.pool_scores, atol=1e-6)


def test_skip_nonfinite_with_a_finite_row_that_overflows_float32_squares(small_blocks):
    rng = np.random.default_rng(4)
    grads = rng.normal(size=(12, D)).astype(np.float32)
    grads[4] *= 1e30  # finite, but its squared norm overflows float32
    val = FeatureTable(["v"], {"grad": rng.normal(size=(1, D))})
    train = FeatureTable([f"ex{i}" for i in range(12)], {"grad_adam": grads})
    got = LessSelector().select(train, val, 3, seed=0)
    want = cosine_matrix(grads.astype(np.float64), val.get("grad")).mean(1)
    np.testing.assert_allclose(got.pool_scores, want, atol=1e-6)


def test_every_validation_row_nonfinite_is_an_error(make_table):
    train = make_table(grad_adam=[[1.0, 0.0]])
    val = make_table(grad=[[np.nan, 0.0]])
    with pytest.raises(SelectgymError, match="every row of table"):
        LessSelector(skip_nonfinite=True).select(train, val, 1, seed=0)


@pytest.mark.parametrize("make", [LessSelector, NiceSelector, lambda: GradAlignSelector(mode="sim", chunk_size=30),
                                  lambda: GradAlignSelector(mode="learnalign", chunk_size=30)])
def test_selectors_never_read_more_than_a_block(tmp_path, small_blocks, monkeypatch, make):
    train_arrays, val_arrays = _arrays(np.random.default_rng(6))
    store = _store(tmp_path, train_arrays, val_arrays)
    train, val = store.table("train"), store.table("val")
    reads = []
    read, take = DiskArray.read, DiskArray.take
    monkeypatch.setattr(DiskArray, "read", lambda self, a, b, out=None: reads.append(b - a) or read(self, a, b, out))
    monkeypatch.setattr(DiskArray, "take", lambda self, rows: reads.append(len(rows)) or take(self, rows))

    def whole(self, *args, **kwargs):
        raise AssertionError(f"{self.name} loaded whole")

    monkeypatch.setattr(DiskArray, "__array__", whole)
    make().select(train, val, 10, seed=0)
    assert reads and max(reads) <= max(4, M)  # training blocks of 4 rows; the validation table is read whole
