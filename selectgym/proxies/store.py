"""``FeatureStore``: computed features on disk, in shards, so a killed run resumes where it stopped.

Layout of one store (``<root>/<key>/``, ``key`` = hash of model, adapter, pool content and config)::

    meta.json                         key, the material it was hashed from, and free-form meta
    proxy.safetensors                 the warmed-up adapter (and Adam moments) that produced the features
    <table>/shard-00000.safetensors   that shard's rows of every array; the ids in the file's metadata
    complete.json                     written last: shards per table; until then the store is partial

Tables open lazily: ``table(name)`` reads only the shard headers (ids and where each array's rows lie)
and gives ``DiskArray``s for per-row vectors, so a pool of 10^6 rows at d = 8192 opens in seconds and
little memory. A store created with ``grad_dtype="float16"`` keeps projected gradients in half precision
(half the disk and reading time; the cosine error it costs is measured in ``benchmarks/results/scale.md``);
scoring reads them as float32. Stores written before either change read the same way.

One root (``--out``) can hold stores for several configurations; ``<root>/latest.json`` names the one
most recently finished or reused, which is what opening the root gives when it holds more than one.

Every file is written to a temporary name and renamed into place, so a shard under its final name is
always whole; a finished shard is never rewritten.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from selectgym.errors import SelectgymError
from selectgym.proxies.table import DiskArray, FeatureTable
from selectgym.utils import atomic_path, stable_hash, write_json

STORE_VERSION = 1
META_FILE = "meta.json"
COMPLETE_FILE = "complete.json"
PROXY_FILE = "proxy.safetensors"
LATEST_FILE = "latest.json"
#: held (``flock``) by the run computing into a store; the kernel releases it when that process ends, however
LOCK_FILE = "computing.lock"
SHARD_RE = re.compile(r"^shard-(\d{5,})\.safetensors$")
TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
#: array names (before any ``@ckpt``) holding projected gradients, the arrays ``grad_dtype`` applies to
GRADIENT_ARRAYS = ("grad", "grad_adam", "pg_grad", "grpo_grad")
GRAD_DTYPES = ("float32", "float16")
#: safetensors dtype names -> numpy
SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                      "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def is_gradient_array(name: str) -> bool:
    """True for projected-gradient arrays (``grad``, ``grad_adam@ckpt1``...), which may be stored as float16."""
    return name.split("@", 1)[0] in GRADIENT_ARRAYS


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """A safetensors file's header (tensor entries and ``__metadata__``) and the byte offset its data starts at."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise SelectgymError(f"{path} is truncated (no safetensors header); remove the store and recompute")
        (size,) = struct.unpack("<Q", raw)
        body = fh.read(size)
    if len(body) != size:
        raise SelectgymError(f"{path} is truncated (header cut short); remove the store and recompute")
    try:
        header = json.loads(body)
    except ValueError:
        raise SelectgymError(f"{path} has a corrupt header; remove the store and recompute") from None
    return header, 8 + size


def store_key(key_material: dict[str, Any]) -> str:
    """The folder name of the store for this material (same material, same folder)."""
    return stable_hash({"store_version": STORE_VERSION, **key_material})


class FeatureStore:
    """A folder of feature shards for one (model, adapter, pool, config) combination."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        info_path = self.path / META_FILE
        if not info_path.exists():
            raise SelectgymError(f"{self.path} is not a feature store (no {META_FILE}); "
                                 f"compute features with `selectgym features`")
        self._info = json.loads(info_path.read_text(encoding="utf-8"))
        #: set by the run that returned this store: ``{"computed": examples, "reused": examples}``
        self.last_run: dict[str, int] | None = None

    @classmethod
    def create(cls, root: str | os.PathLike, key_material: dict[str, Any], meta: dict[str, Any],
               grad_dtype: str = "float32") -> FeatureStore:
        """Create (or reopen, to resume) the store ``<root>/<key>/`` for this material.

        ``meta`` is stored only when the store is new: an existing store keeps the meta its first run wrote.
        ``grad_dtype="float16"`` stores projected gradients in half precision; it is part of the key, so a
        float16 store never resumes a float32 one.
        """
        if grad_dtype not in GRAD_DTYPES:
            raise SelectgymError(f"grad_dtype must be one of {', '.join(GRAD_DTYPES)}, got {grad_dtype!r}")
        if grad_dtype != "float32":
            key_material = {**key_material, "grad_dtype": grad_dtype}
        key = store_key(key_material)
        path = Path(root) / key
        if not (path / META_FILE).exists():
            path.mkdir(parents=True, exist_ok=True)
            write_json(path / META_FILE, {"version": STORE_VERSION, "key": key, "key_material": key_material,
                                          "meta": meta, "grad_dtype": grad_dtype})
        store = cls(path)
        if store.key != key:
            raise SelectgymError(f"{path} holds features for key {store.key}, not {key}; remove the folder")
        return store

    @classmethod
    def open(cls, path: str | os.PathLike) -> FeatureStore:
        """Open a store folder, or a features root that holds exactly one store."""
        path = Path(path)
        if (path / META_FILE).exists():
            return cls(path)
        if not path.is_dir():
            raise SelectgymError(f"{path}: no such feature folder; compute it with `selectgym features --out {path}`")
        found = sorted(p for p in path.iterdir() if (p / META_FILE).exists())
        if len(found) == 1:
            return cls(found[0])
        if not found:
            raise SelectgymError(f"{path} holds no feature store; compute one with `selectgym features --out {path}`")
        latest = path / LATEST_FILE
        if latest.exists():
            key = json.loads(latest.read_text(encoding="utf-8"))["key"]
            if (path / key / META_FILE).exists():
                return cls(path / key)
        raise SelectgymError(f"{path} holds {len(found)} feature stores ({', '.join(p.name for p in found)}); "
                             f"pass one of them, e.g. {found[0]}")

    def mark_latest(self) -> None:
        """Make this the store that opening its root folder gives."""
        write_json(self.path.parent / LATEST_FILE, {"key": self.key})

    @property
    def key(self) -> str:
        return self._info["key"]

    @property
    def grad_dtype(self) -> str:
        """How projected gradients are stored (``float32``, or ``float16`` for half the disk)."""
        return self._info.get("grad_dtype", "float32")

    @property
    def key_material(self) -> dict[str, Any]:
        return self._info["key_material"]

    @property
    def meta(self) -> dict[str, Any]:
        """What the first run recorded: pool and validation paths and hashes, config, model, adapter."""
        return {**self._info["meta"], "key": self.key}

    def update_meta(self, **values: Any) -> None:
        """Add entries to ``meta`` (atomically rewrites ``meta.json``)."""
        self._info["meta"].update(values)
        write_json(self.path / META_FILE, self._info)

    @contextmanager
    def computing(self) -> Iterator[None]:
        """Hold this store's lock while computing into it: a second run on the same store (same ``--out`` and
        settings) is refused at once instead of racing this one for the same shards. A killed run holds nothing."""
        try:
            import fcntl
        except ImportError:  # no flock on this platform: nothing to hold
            yield
            return
        with open(self.path / LOCK_FILE, "a+", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                pid = fh.read().strip()
                raise SelectgymError(f"another `selectgym features` run{f' (process {pid})' if pid else ''} is "
                                     f"computing {self.path} right now; wait for it to finish (a rerun then reuses "
                                     f"its features), or pass another --out") from None
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # shards -------------------------------------------------------------------------------------------

    def _shard_path(self, table: str, index: int) -> Path:
        if not TABLE_NAME_RE.match(table):
            raise SelectgymError(f"table name {table!r} must be letters, digits, '_', '.' or '-'")
        if index < 0:
            raise SelectgymError(f"shard index must be >= 0, got {index}")
        return self.path / table / f"shard-{index:05d}.safetensors"

    def write_shard(self, table: str, index: int, ids: list[str], arrays: dict[str, np.ndarray]) -> Path:
        """Write one shard atomically; refuses to replace a finished shard."""
        from safetensors.numpy import save_file

        final = self._shard_path(table, index)
        if final.exists():
            raise SelectgymError(f"{final} is already finished; finished shards are never rewritten")
        if not ids:
            raise SelectgymError(f"shard {index} of table {table!r} has no rows")
        tensors = {}
        for name, arr in arrays.items():
            if self.grad_dtype != "float32" and is_gradient_array(name):
                arr = np.asarray(arr, dtype=self.grad_dtype)
            arr = np.ascontiguousarray(arr)
            if len(arr) != len(ids):
                raise SelectgymError(f"array {name!r} has {len(arr)} rows but shard {index} has {len(ids)} ids")
            tensors[name] = arr
        with atomic_path(final) as tmp:
            save_file(tensors, str(tmp), metadata={"ids": json.dumps(list(ids)), "table": table, "index": str(index)})
        return final

    def finished_shards(self, table: str) -> list[int]:
        """Indices of the shards of ``table`` already on disk, ascending."""
        folder = self.path / table
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in folder.iterdir() if (m := SHARD_RE.match(p.name)))

    def read_shard(self, table: str, index: int) -> tuple[list[str], dict[str, np.ndarray]]:
        """One shard's ids and arrays."""
        from safetensors import safe_open

        path = self._shard_path(table, index)
        with safe_open(str(path), framework="np") as fh:
            ids = json.loads(fh.metadata()["ids"])
            arrays = {name: fh.get_tensor(name) for name in fh.keys()}
        return ids, arrays

    # tables -------------------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return (self.path / COMPLETE_FILE).exists()

    def mark_complete(self, shards: dict[str, int]) -> None:
        """Record that every table has all its shards (``{table: number of shards}``); checked first."""
        for table, n in shards.items():
            have = self.finished_shards(table)
            if have != list(range(n)):
                missing = sorted(set(range(n)) - set(have))
                raise SelectgymError(f"{self.path}: table {table!r} lacks shards {missing[:5]}; "
                                     f"rerun `selectgym features` with the same settings to finish")
        write_json(self.path / COMPLETE_FILE, {"shards": shards})

    @property
    def tables(self) -> list[str]:
        """Names of the tables with at least one finished shard."""
        return sorted(p.name for p in self.path.iterdir() if p.is_dir() and self.finished_shards(p.name))

    def has_table(self, name: str) -> bool:
        return bool(self.finished_shards(name))

    def _shard_list(self, name: str) -> list[int]:
        """The shard indices of a finished table; an incomplete store is an error (a run still computing it, or
        one that was stopped, told apart)."""
        shards = self.finished_shards(name)
        if not self.complete:
            done = f"{len(shards)} shard(s) of {name!r} finished" if shards else f"no shard of {name!r} finished"
            pid = self.computing_pid()
            if pid is not None:
                raise SelectgymError(f"{self.path} is still being computed by `selectgym features` (process {pid}; "
                                     f"{done} so far); wait for it to finish")
            raise SelectgymError(f"{self.path} is incomplete: `selectgym features` was interrupted ({done}); rerun "
                                 f"`selectgym features` with the same settings to finish it")
        if not shards:
            raise SelectgymError(f"{self.path} has no {name!r} features (tables: {', '.join(self.tables) or 'none'})")
        expected = json.loads((self.path / COMPLETE_FILE).read_text())["shards"].get(name, len(shards))
        if shards != list(range(expected)):
            raise SelectgymError(f"{self.path} is incomplete ({len(shards)} shards of {name!r} finished); "
                                 f"rerun `selectgym features` with the same settings to finish it")
        return shards

    def computing_pid(self) -> str | None:
        """The process computing into this store now (its id as written in the lock), or None when none is."""
        try:
            import fcntl
        except ImportError:
            return None
        try:
            fh = open(self.path / LOCK_FILE, encoding="utf-8")
        except OSError:
            return None
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return fh.read().strip() or "?"
            fcntl.flock(fh, fcntl.LOCK_UN)
        return None

    def _headers(self, name: str) -> list[tuple[Path, dict[str, Any], int]]:
        return [(p, *read_header(p)) for p in (self._shard_path(name, i) for i in self._shard_list(name))]

    def ids(self, name: str) -> list[str]:
        """The ids of table ``name`` in row order, read from the shard headers without touching any array."""
        return [i for _, header, _ in self._headers(name) for i in json.loads(header["__metadata__"]["ids"])]

    def table(self, name: str, lazy: bool = True) -> FeatureTable:
        """All shards of ``name`` as one table; an incomplete store is an error.

        ``lazy`` (the default) reads only the headers: per-row vectors stay on disk as ``DiskArray``s and
        one-number-per-row arrays (loss, length...) are read at once (they are small). ``lazy=False`` loads
        every array into memory, as the store did before it opened tables lazily.
        """
        headers = self._headers(name)
        ids: list[str] = []
        parts: dict[str, list[tuple[Path, int, int]]] = {}
        kinds: dict[str, tuple[str, tuple[int, ...]]] = {}
        for index, (path, header, data_start) in enumerate(headers):
            shard_ids = json.loads(header.get("__metadata__", {}).get("ids", "[]"))
            arrays = {k: v for k, v in header.items() if k != "__metadata__"}
            end = data_start + max((int(v["data_offsets"][1]) for v in arrays.values()), default=0)
            if path.stat().st_size < end:
                raise SelectgymError(f"{path} is truncated ({path.stat().st_size} of {end} bytes); remove the store "
                                     f"and recompute")
            if kinds and set(arrays) != set(kinds):
                raise SelectgymError(f"{self.path}: shard {index} of {name!r} has arrays {sorted(arrays)}, "
                                     f"the others {sorted(kinds)}; remove the store and recompute")
            for key, entry in arrays.items():
                shape = tuple(entry["shape"])
                if not shape or shape[0] != len(shard_ids):
                    raise SelectgymError(f"{path}: array {key!r} has shape {shape} for {len(shard_ids)} ids; "
                                         f"remove the store and recompute")
                kind = (entry["dtype"], shape[1:])
                if kinds.setdefault(key, kind) != kind:
                    raise SelectgymError(f"{self.path}: array {key!r} of {name!r} has {kind} in shard {index} but "
                                         f"{kinds[key]} before; remove the store and recompute")
                parts.setdefault(key, []).append((path, data_start + int(entry["data_offsets"][0]), shape[0]))
            ids.extend(shard_ids)
        arrays: dict[str, Any] = {}
        for key, (dtype, row_shape) in kinds.items():
            if dtype not in SAFETENSORS_DTYPES:
                raise SelectgymError(f"{self.path}: array {key!r} is stored as {dtype}, which selectgym does not read; "
                                     f"recompute the features")
            disk = DiskArray(parts[key], SAFETENSORS_DTYPES[dtype], row_shape, name=f"{name}/{key}")
            arrays[key] = disk if lazy and row_shape else np.asarray(disk)
        return FeatureTable(ids, arrays, {**self.meta, "table": name, "store": str(self.path)})

    # the proxy that produced the features -------------------------------------------------------------

    @property
    def proxy_path(self) -> Path:
        return self.path / PROXY_FILE

    def save_proxy(self, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
        """Save the adapter state the features come from (written once, atomically)."""
        from safetensors.numpy import save_file

        with atomic_path(self.proxy_path) as tmp:
            # ascontiguousarray would turn a 0-d array (an optimizer step) into shape (1,)
            save_file({k: np.ascontiguousarray(v).reshape(np.shape(v)) for k, v in tensors.items()}, str(tmp),
                      metadata=metadata)
        return self.proxy_path

    def load_proxy(self) -> dict[str, np.ndarray] | None:
        """The saved adapter state, or ``None`` before the first run saved it."""
        from safetensors.numpy import load_file

        if not self.proxy_path.exists():
            return None
        return load_file(str(self.proxy_path))

    def __repr__(self) -> str:
        state = "complete" if self.complete else "partial"
        return f"FeatureStore({str(self.path)!r}, {state}, tables={self.tables})"
