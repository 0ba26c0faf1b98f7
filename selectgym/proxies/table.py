"""``FeatureTable``: the form of computed features that selectors and environments read.

One row per example, every array's first axis aligned with ``ids``. Array names are a contract:

Training pool table (``store.table("train")``):
    ``grad``        (N, d)  projected SFT gradient over the LoRA parameters (sgd, raw)
    ``grad_adam``   (N, d)  projected Adam-normalised SFT gradient (needs an optimizer state)
    ``loss``        (N,)    SFT loss (token mean over the response)
    ``length``      (N,)    response tokens
    ``embedding``   (N, e)  MiniLM sentence embedding of prompt + response
    ``dpo_gap``     (N,)    DPO implicit reward gap (preference pools)
    ``grpo_grad``   (N, d)  projected GRPO candidate gradient (0 where the group has no signal)
    ``grpo_signal`` (N,)    1 if the rollouts' rewards differed, else 0
    ``pass_rate``   (N,)    share of rollouts the verifier accepted
Validation table (``store.table("val")``):
    ``grad``        (M, d)  projected SFT gradient of the reference answer (never Adam-normalised; written
                            with ``grad`` or ``grad_adam``, so only the SFT pool's store holds it)
    ``pg_grad``     (M, d)  NICE policy gradient (reward-weighted REINFORCE)
    ``grpo_grad``   (M, d)  projected GRPO gradient per validation problem
    ``pass_rate``   (M,)
Several checkpoints (LESS) use ``name@ckpt`` keys, with ``meta["checkpoints"] = {ckpt: mean_lr}``.

An array is either an in-memory ``numpy`` array or a ``DiskArray`` (a store opened lazily): rows on disk,
read on demand. Code that must scale reads (N, d) arrays with ``iter_blocks``; ``np.asarray`` on a
``DiskArray`` still works and loads it whole, which is fine for small stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selectgym.errors import SelectgymError

#: bytes of float32 rows one block holds: enough rows for fast products, few enough that a block stays in the
#: CPU cache between its cast, its norms and its products (measured: 8 MiB beats 64 MiB by 20-25%).
BLOCK_BYTES = 8 << 20


class DiskArray:
    """One array's rows spread over shard files, read on demand (never held whole unless asked).

    ``parts`` are ``(path, byte offset of the first row, rows)`` in row order. A run of rows is a plain file
    read; a gather of scattered rows maps only the span it needs and drops the mapping afterwards. Either
    way the pages read leave the process (the OS may cache them, but they do not count against its memory).
    """

    def __init__(self, parts: Sequence[tuple[str | Path, int, int]], dtype: np.dtype | str,
                 row_shape: Sequence[int], name: str = "") -> None:
        self.parts = [(str(p), int(o), int(n)) for p, o, n in parts]
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.name = name
        self._starts = np.cumsum([0] + [n for _, _, n in self.parts])
        self.shape = (int(self._starts[-1]), *self.row_shape)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def _map(self, part: int, start: int, stop: int) -> np.memmap:
        path, offset, _ = self.parts[part]
        return np.memmap(path, dtype=self.dtype, mode="r", offset=offset + start * self.row_bytes,
                         shape=(stop - start, *self.row_shape))

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` as an in-memory array of the stored dtype (into ``out`` when given).

        Plain file reads, no mapping: the rows pass through the OS cache and never count as this process's
        memory; reusing ``out`` across blocks spares a page fault per 4 KB of every block.
        """
        start, stop = max(0, int(start)), min(len(self), int(stop))
        shape = (max(0, stop - start), *self.row_shape)
        if out is None:
            out = np.empty(shape, dtype=self.dtype)
        elif out.shape != shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {self.dtype} array of shape {shape}")
        if stop <= start:
            return out
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        for part in range(first, len(self.parts)):
            lo, hi = int(self._starts[part]), int(self._starts[part + 1])
            if lo >= stop:
                break
            a, b = max(start, lo), min(stop, hi)
            if b > a:
                path, offset, _ = self.parts[part]
                view = memoryview(out[a - start:b - start]).cast("B")
                with open(path, "rb", buffering=0) as fh:
                    fh.seek(offset + (a - lo) * self.row_bytes)
                    got = fh.readinto(view)
                    while got < len(view):
                        more = fh.readinto(view[got:])
                        if not more:
                            raise SelectgymError(f"{path} ends early (truncated); remove the store and recompute")
                        got += more
        return out

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The given rows, in the given order (duplicates allowed), as an in-memory array."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        rows = np.where(rows < 0, rows + len(self), rows)
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        part_of = np.searchsorted(self._starts, sorted_rows, side="right") - 1
        for part in np.unique(part_of):
            sel = np.flatnonzero(part_of == part)
            local = sorted_rows[sel] - int(self._starts[part])
            lo, hi = int(local[0]), int(local[-1]) + 1
            mm = self._map(int(part), lo, hi)
            out[order[sel]] = mm[local - lo]
            del mm
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} rows")
            row = self.read(i, i + 1)[0]
            return row[rest] if rest else row
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            out = self.read(start, stop) if step == 1 else self.take(np.arange(start, stop, step))
        else:
            key = np.asarray(key)
            out = self.take(np.flatnonzero(key) if key.dtype == bool else key)
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.read(0, len(self))
        return out if dtype is None else out.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        inputs = tuple(np.asarray(x) if isinstance(x, DiskArray) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func is np.shape and len(args) == 1 and not kwargs:  # the shape is known without reading anything
            return self.shape
        if func is np.ndim and len(args) == 1 and not kwargs:
            return self.ndim

        def load(x: Any) -> Any:
            if isinstance(x, DiskArray):
                return np.asarray(x)
            if isinstance(x, (list, tuple)):
                return type(x)(load(v) for v in x)
            return x

        return func(*load(args), **{k: load(v) for k, v in kwargs.items()})

    def __getattr__(self, attr: str) -> Any:
        # Whole-array numpy methods (``.sum(1)``, ``.mean()``...) keep working on small stores: they load it.
        if attr.startswith("_") or not hasattr(np.ndarray, attr):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")
        return getattr(np.asarray(self), attr)

    def __repr__(self) -> str:
        return f"DiskArray({self.name!r}, shape={self.shape}, dtype={self.dtype}, shards={len(self.parts)})"


def _whole_array_operator(name: str) -> Callable[..., Any]:
    def op(self: DiskArray, *args: Any) -> Any:
        return getattr(np.asarray(self), name)(*args)

    op.__name__ = name
    return op


for _op in ("add", "sub", "mul", "truediv", "floordiv", "pow", "matmul", "mod"):
    for _name in (f"__{_op}__", f"__r{_op}__"):
        setattr(DiskArray, _name, _whole_array_operator(_name))
for _name in ("__neg__", "__abs__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
    setattr(DiskArray, _name, _whole_array_operator(_name))
DiskArray.__hash__ = None  # type: ignore[assignment]


def as_float32(block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``block`` copied into float32 (into ``out`` when given); float16 goes through torch's vectorised cast,
    several times numpy's, which is what reading a float16 store costs."""
    out = np.empty(block.shape, dtype=np.float32) if out is None else out
    if block.dtype == np.float16 and block.flags.writeable and block.flags.c_contiguous and out.flags.c_contiguous:
        import torch

        torch.from_numpy(out).copy_(torch.from_numpy(block))
    else:
        np.copyto(out, block, casting="unsafe")
    return out


def block_size(arr: Any, block_bytes: int | None = None) -> int:
    """Rows per block so one float32 block of ``arr`` takes about ``block_bytes`` (default ``BLOCK_BYTES``)."""
    per_row = int(np.prod(np.shape(arr)[1:], dtype=np.int64)) * 4
    return max(1, (block_bytes or BLOCK_BYTES) // max(per_row, 1))


def iter_blocks(arr: Any, rows: np.ndarray | None = None, block_rows: int | None = None,
                dtype: Any = np.float32, reuse: bool = False) -> Iterator[tuple[slice | np.ndarray, np.ndarray]]:
    """``(where, block)`` over ``arr``'s rows, a block at a time, each block an array of ``dtype``.

    Without ``rows``: consecutive blocks, ``where`` a slice of row positions. With ``rows`` (row positions):
    those rows, ``where`` an index array into ``rows``; they are read in ascending order, which is what disk
    wants, so ``where`` says where each block's rows sit in ``rows``. Each block is a fresh array, unless
    ``reuse``: then every block lives in the same buffers (faster), so use it before asking for the next.
    """
    step = block_rows or block_size(arr)
    n = len(arr) if rows is None else len(rows)
    row_shape = tuple(np.shape(arr)[1:])
    buffers: dict[str, np.ndarray] = {}

    def buffer(name: str, dt: Any, size: int) -> np.ndarray | None:
        if not reuse:
            return None
        if name not in buffers:
            buffers[name] = np.empty((min(step, n), *row_shape), dtype=dt)
        return buffers[name][:size]

    def convert(block: np.ndarray) -> np.ndarray:
        if np.dtype(dtype) == np.float32:
            return as_float32(block, buffer("out", np.float32, len(block)))
        out = buffer("out", dtype, len(block))
        if out is None:
            return np.array(block, dtype=dtype)
        np.copyto(out, block, casting="unsafe")
        return out

    if rows is None:
        for start in range(0, n, step):
            stop = min(start + step, n)
            if isinstance(arr, DiskArray):
                block = arr.read(start, stop, buffer("raw", arr.dtype, stop - start))
            else:
                block = arr[start:stop]
            yield slice(start, stop), convert(block)
        return
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    for start in range(0, n, step):
        where = order[start:start + step]
        block = arr.take(rows[where]) if isinstance(arr, DiskArray) else arr[rows[where]]
        yield where, convert(block)


@dataclass
class FeatureTable:
    """Per-example feature arrays aligned with ``ids``, plus free-form ``meta`` (config, projection...)."""

    ids: list[str]
    arrays: dict[str, np.ndarray | DiskArray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = list(self.ids)
        for name, arr in self.arrays.items():
            if len(arr) != len(self.ids):
                raise SelectgymError(f"feature {name!r} has {len(arr)} rows but the table has {len(self.ids)} ids")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def name(self) -> str:
        """The table's name in its store (``train``, ``val``), or ``features`` for a table built in memory."""
        return str(self.meta.get("table", "features"))

    def has(self, name: str) -> bool:
        return name in self.arrays

    def get(self, name: str) -> np.ndarray | DiskArray:
        """An array by name; a clear error lists what the table has and how to compute the rest.

        A lazily opened store gives ``DiskArray``s for per-row vectors: read them with ``iter_blocks`` (or
        ``np.asarray``, which loads the whole array).
        """
        if name not in self.arrays:
            from selectgym.proxies.features import feature_of_array  # the registry knows who writes what

            have = ", ".join(sorted(self.arrays)) or "nothing"
            feature = feature_of_array(name)
            raise SelectgymError(f"features have no {name!r} (they have: {have}); recompute them with "
                                 f"`selectgym features --features ... {feature}`")
        return self.arrays[name]

    def derived(self, key: tuple, build: Callable[[], Any]) -> Any:
        """``build()``, computed once per table and shared by everything holding it: eight vector-env copies
        of a reward keep one prepared (N, d) array, not eight. Arrays are never replaced after construction."""
        cache = self.__dict__.setdefault("_derived", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def subset(self, rows: Sequence[int] | np.ndarray) -> FeatureTable:
        """The table restricted to these row positions, in that order (read into memory)."""
        rows = np.asarray(rows, dtype=np.int64)
        return FeatureTable([self.ids[i] for i in rows], {k: v[rows] for k, v in self.arrays.items()}, dict(self.meta))

    def schema(self) -> dict[str, list[int]]:
        """Name -> per-row shape: what a saved policy records and checks against."""
        return {k: list(np.shape(v)[1:]) for k, v in sorted(self.arrays.items())}


def merge_tables(tables: list[FeatureTable]) -> FeatureTable:
    """One table from several computed on pools with the same ids (the suite's three formats).

    Each array has one owner: a name two tables both hold is an error, never a silent overwrite. The one
    exception is an array both hold byte for byte (a store written before validation ``grad`` belonged to the
    SFT gradient features holds it in every pool kind's table): it is kept once.
    """
    base = tables[0]
    arrays, meta = dict(base.arrays), dict(base.meta)
    for t in tables[1:]:
        if t.ids != base.ids:
            raise SelectgymError("feature tables to merge must list the same example ids in the same order")
        for name, arr in t.arrays.items():
            if name in arrays and not _same_bytes(arrays[name], arr):
                raise SelectgymError(f"feature tables to merge both hold {name!r} with different values "
                                     f"({base.meta.get('store', base.name)} and {t.meta.get('store', t.name)}); "
                                     "compute each array on one pool only")
            arrays.setdefault(name, arr)
        meta.update(t.meta)
    return FeatureTable(base.ids, arrays, meta)


def _same_bytes(a: Any, b: Any) -> bool:
    if np.shape(a) != np.shape(b) or np.dtype(a.dtype) != np.dtype(b.dtype):
        return False
    return all(x.tobytes() == y.tobytes() for (_, x), (_, y) in zip(iter_blocks(a, dtype=a.dtype),
                                                                     iter_blocks(b, dtype=b.dtype), strict=True))
