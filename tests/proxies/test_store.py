"""The feature store: atomic shards, resume, tables concatenated in order."""

from __future__ import annotations

import os

import numpy as np
import pytest

from selectgym.errors import SelectgymError
from selectgym.proxies.store import FeatureStore, store_key

META = {"pool_path": "p.jsonl", "val_path": "v.jsonl", "pool_hash": "abc", "config": {"dim": 4}, "model": "tiny"}


def _rows(index: int, n: int = 3) -> tuple[list[str], dict[str, np.ndarray]]:
    base = index * n
    ids = [f"ex-{base + i}" for i in range(n)]
    grad = np.arange(base * 4, (base + n) * 4, dtype=np.float32).reshape(n, 4)
    return ids, {"grad": grad, "loss": grad.sum(1)}


def _write_all(store: FeatureStore, n_shards: int, crash_at: int | None = None) -> None:
    """Write missing shards in order, like the pipeline; raise mid-way at ``crash_at``."""
    done = set(store.finished_shards("train"))
    for i in range(n_shards):
        if i in done:
            continue
        if i == crash_at:
            raise RuntimeError("killed")
        store.write_shard("train", i, *_rows(i))
    store.mark_complete({"train": n_shards})


def test_key_follows_material(tmp_path):
    a = FeatureStore.create(tmp_path, {"pool": "h1", "config": {"dim": 4}}, META)
    b = FeatureStore.create(tmp_path, {"pool": "h1", "config": {"dim": 8}}, META)
    c = FeatureStore.create(tmp_path, {"pool": "h2", "config": {"dim": 4}}, META)
    again = FeatureStore.create(tmp_path, {"config": {"dim": 4}, "pool": "h1"}, {"other": 1})
    assert len({a.path, b.path, c.path}) == 3
    assert again.path == a.path == tmp_path / store_key({"pool": "h1", "config": {"dim": 4}})
    assert again.meta["pool_hash"] == "abc"  # the first run's meta is kept
    assert {"pool_path", "val_path", "pool_hash", "config", "model"} <= set(a.meta)


def test_table_concatenates_shards_in_order(tmp_path):
    store = FeatureStore.create(tmp_path, {"k": 1}, META)
    for i in (2, 0, 1):  # written out of order, as ranks would
        store.write_shard("train", i, *_rows(i))
    store.mark_complete({"train": 3})
    table = FeatureStore.open(store.path).table("train")
    assert table.ids == [f"ex-{i}" for i in range(9)]
    np.testing.assert_array_equal(table.get("grad"), np.arange(36, dtype=np.float32).reshape(9, 4))
    np.testing.assert_array_equal(table.get("loss"), table.get("grad").sum(1))
    assert table.meta["pool_hash"] == "abc" and table.meta["table"] == "train"
    assert store.tables == ["train"] and store.has_table("train") and not store.has_table("val")


def test_open_accepts_root_with_one_store(tmp_path):
    store = FeatureStore.create(tmp_path, {"k": 1}, META)
    assert FeatureStore.open(tmp_path).path == store.path
    other = FeatureStore.create(tmp_path, {"k": 2}, META)
    with pytest.raises(SelectgymError, match="2 feature stores"):
        FeatureStore.open(tmp_path)
    other.mark_latest()
    assert FeatureStore.open(tmp_path).path == other.path
    store.mark_latest()
    assert FeatureStore.open(tmp_path).path == store.path
    with pytest.raises(SelectgymError, match="no such feature folder"):
        FeatureStore.open(tmp_path / "missing")


def test_incomplete_store_is_an_error(tmp_path):
    store = FeatureStore.create(tmp_path, {"k": 1}, META)
    store.write_shard("train", 0, *_rows(0))
    store.write_shard("train", 2, *_rows(2))
    with pytest.raises(SelectgymError, match="incomplete"):
        store.table("train")
    with pytest.raises(SelectgymError, match=r"lacks shards \[1\]"):
        store.mark_complete({"train": 3})
    assert not store.complete


def test_finished_shard_is_never_rewritten(tmp_path):
    store = FeatureStore.create(tmp_path, {"k": 1}, META)
    store.write_shard("train", 0, *_rows(0))
    with pytest.raises(SelectgymError, match="never rewritten"):
        store.write_shard("train", 0, *_rows(5))
    assert store.read_shard("train", 0)[0] == _rows(0)[0]


def test_failed_write_leaves_no_shard(tmp_path, monkeypatch):
    import safetensors.numpy

    def half_write(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"half a shard")
        raise OSError("disk full")

    store = FeatureStore.create(tmp_path, {"k": 1}, META)
    monkeypatch.setattr(safetensors.numpy, "save_file", half_write)
    with pytest.raises(OSError, match="disk full"):
        store.write_shard("train", 0, *_rows(0))
    assert store.finished_shards("train") == []
    assert list((store.path / "train").iterdir()) == []  # the temporary file is gone too
    ids, arrays = _rows(0)
    with pytest.raises(SelectgymError, match="rows"):
        store.write_shard("train", 0, ids, {**arrays, "bad": np.zeros(2)})


def test_resume_after_crash_keeps_finished_shards(tmp_path):
    crashed = FeatureStore.create(tmp_path / "a", {"k": 1}, META)
    with pytest.raises(RuntimeError, match="killed"):
        _write_all(crashed, 4, crash_at=2)
    assert crashed.finished_shards("train") == [0, 1]
    first = crashed.path / "train" / "shard-00000.safetensors"
    before = (first.read_bytes(), os.stat(first).st_mtime_ns)

    resumed = FeatureStore.open(tmp_path / "a")
    _write_all(resumed, 4)
    assert (first.read_bytes(), os.stat(first).st_mtime_ns) == before

    clean = FeatureStore.create(tmp_path / "b", {"k": 1}, META)
    _write_all(clean, 4)
    got, want = resumed.table("train"), clean.table("train")
    assert got.ids == want.ids
    for name in want.arrays:
        np.testing.assert_array_equal(got.get(name), want.get(name))


def test_proxy_state_round_trip(tmp_path):
    store = FeatureStore.create(tmp_path, {"k": 1}, META)
    assert store.load_proxy() is None
    state = {"lora.a": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.array(3.0, dtype=np.float32)}
    store.save_proxy(state)
    loaded = FeatureStore.open(store.path).load_proxy()
    np.testing.assert_array_equal(loaded["lora.a"], state["lora.a"])
    assert loaded["step"].shape == () and float(loaded["step"]) == 3.0


def test_not_a_store(tmp_path):
    with pytest.raises(SelectgymError, match="no feature store"):
        FeatureStore.open(tmp_path)


# lazy tables -------------------------------------------------------------------------------------------

def _sharded(tmp_path, n_shards=4, grad_dtype="float32"):
    store = FeatureStore.create(tmp_path, {"k": 1}, META, grad_dtype=grad_dtype)
    _write_all(store, n_shards)
    return store


def test_lazy_table_reads_rows_across_shards_like_the_loaded_one(tmp_path):
    from selectgym.proxies.table import DiskArray, iter_blocks

    store = _sharded(tmp_path)
    lazy, eager = store.table("train"), store.table("train", lazy=False)
    grad = lazy.get("grad")
    want = np.arange(48, dtype=np.float32).reshape(12, 4)
    assert isinstance(grad, DiskArray) and grad.shape == (12, 4) and len(grad.parts) == 4
    assert isinstance(lazy.get("loss"), np.ndarray)  # one number per row: read at once
    assert isinstance(eager.get("grad"), np.ndarray) and lazy.ids == eager.ids == store.ids("train")
    np.testing.assert_array_equal(np.asarray(grad), want)
    np.testing.assert_array_equal(grad[2:10], want[2:10])  # crosses three shards
    np.testing.assert_array_equal(grad[[11, 0, 5, 5, -1]], want[[11, 0, 5, 5, -1]])
    np.testing.assert_array_equal(grad[7], want[7])
    np.testing.assert_array_equal(grad[1:9:3, 2], want[1:9:3, 2])
    np.testing.assert_array_equal(grad.sum(1), want.sum(1))  # numpy methods still work (loading it)
    np.testing.assert_array_equal(grad @ np.ones(4), want @ np.ones(4))
    rows = np.array([9, 1, 4, 10, 3])
    got = np.zeros((5, 4), dtype=np.float32)
    for where, block in iter_blocks(grad, rows=rows, block_rows=2):
        assert block.dtype == np.float32 and len(block) <= 2
        got[where] = block
    np.testing.assert_array_equal(got, want[rows])
    blocks = [(w, b) for w, b in iter_blocks(grad, block_rows=5)]
    assert [w.start for w, _ in blocks] == [0, 5, 10]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), want)
    sub = lazy.subset([3, 0])
    assert sub.ids == ["ex-3", "ex-0"]
    np.testing.assert_array_equal(sub.get("grad"), want[[3, 0]])
    assert lazy.schema() == eager.schema() == {"grad": [4], "loss": []}


def test_float16_store_halves_gradients_only_and_reads_as_float32(tmp_path):
    store = _sharded(tmp_path, grad_dtype="float16")
    assert store.grad_dtype == "float16"
    assert store.key != _sharded(tmp_path / "f32").key  # never resumes a float32 store
    table = store.table("train")
    assert table.get("grad").dtype == np.float16 and table.get("loss").dtype == np.float32
    assert FeatureStore.open(store.path).grad_dtype == "float16"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 256)).astype(np.float32)
    half = x.astype(np.float16).astype(np.float32)
    cos = (x * half).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(half, axis=1)
    assert 1 - cos.min() < 1e-6  # what half precision costs a projected gradient's direction
    with pytest.raises(SelectgymError, match="grad_dtype must be one of"):
        FeatureStore.create(tmp_path / "x", {"k": 1}, META, grad_dtype="int8")


def test_ids_come_from_headers_and_corrupt_headers_are_errors(tmp_path):
    store = _sharded(tmp_path, 2)
    assert store.ids("train") == [f"ex-{i}" for i in range(6)]
    shard = store.path / "train" / "shard-00001.safetensors"
    whole = shard.read_bytes()
    shard.write_bytes(whole[:-8])  # the header is whole, the data is not
    with pytest.raises(SelectgymError, match=r"truncated \(\d+ of \d+ bytes\)"):
        store.table("train")
    shard.write_bytes(whole[:5])
    with pytest.raises(SelectgymError, match="truncated"):
        store.table("train")


def test_a_store_written_before_lazy_tables_reads_the_same(tmp_path):
    import json

    from safetensors.numpy import save_file

    store = FeatureStore.create(tmp_path, {"k": 1}, META)
    info = json.loads((store.path / "meta.json").read_text())
    del info["grad_dtype"]  # what the earlier store wrote
    (store.path / "meta.json").write_text(json.dumps(info))
    (store.path / "train").mkdir()
    for i in range(2):  # shards as the earlier writer saved them: plain safetensors, ids in the metadata
        ids, arrays = _rows(i)
        save_file(arrays, str(store.path / "train" / f"shard-{i:05d}.safetensors"),
                  metadata={"ids": json.dumps(ids), "table": "train", "index": str(i)})
    store.mark_complete({"train": 2})
    old = FeatureStore.open(store.path)
    assert old.grad_dtype == "float32"
    table = old.table("train")
    assert table.ids == [f"ex-{i}" for i in range(6)]
    np.testing.assert_array_equal(np.asarray(table.get("grad")), np.arange(24, dtype=np.float32).reshape(6, 4))
