"""The feature pipeline: from a pool and a validation set to a resumable ``FeatureStore``.

One proxy (``proxies.proxy``), warmed up LESS-style, then the training pool in shards (skipping finished
ones) and the validation set, each shard's arrays computed by the features the config names
(``proxies.features.FEATURES``). Under ``torchrun`` each rank computes the shards ``i`` with
``i % world_size == rank``; rank 0 warms the proxy up once (every rank loads that saved adapter), writes
the validation table and marks the store complete.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from selectgym.data.checks import degenerate_report, log_report
from selectgym.data.io import load_pool
from selectgym.data.pool import Example, Pool
from selectgym.errors import SelectgymError
from selectgym.proxies.distributed import barrier, dist_env, process_group
from selectgym.proxies.feature_config import FeatureConfig
from selectgym.proxies.features import feature_class
from selectgym.proxies.models import weights_digest
from selectgym.proxies.proxy import Proxy, build_proxy
from selectgym.proxies.secrets import redact_config
from selectgym.proxies.store import FeatureStore
from selectgym.proxies.table import FeatureTable
from selectgym.utils import check_device

log = logging.getLogger(__name__)

TRAIN, VAL = "train", "val"


def check_pools(cfg: FeatureConfig, pool: Pool, val: Pool | None) -> None:
    """One-line errors for features the pools cannot give."""
    if len(pool) == 0:
        raise SelectgymError(f"{pool.source}: the pool is empty; features need at least one example")
    for name in cfg.features:
        cfg.feature(name).check(cfg, pool, val)


def _check_finite(name: str, values: np.ndarray, ids: Sequence[str]) -> None:
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        raise SelectgymError(f"feature {name!r} is not finite (NaN/inf) for example {ids[int(np.argmax(bad))]!r}; "
                             f"check that example, or lower warmup_lr")


def _computed(proxy: Proxy, examples: Sequence[Example], table: str) -> dict[str, np.ndarray]:
    """Every array the requested features write to ``table`` for these examples, checked finite."""
    cache: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name in proxy.cfg.features:
        feature = proxy.cfg.feature(name)
        arrays.update(feature.train(proxy, examples, cache) if table == TRAIN else feature.val(proxy, examples, cache))
    for name, values in arrays.items():
        _check_finite(name, values, [ex.id for ex in examples])
    return arrays


def train_shard(proxy: Proxy, examples: Sequence[Example]) -> dict[str, np.ndarray]:
    """Every requested training-pool array for one shard."""
    return _computed(proxy, examples, TRAIN)


def val_table(proxy: Proxy, examples: Sequence[Example]) -> dict[str, np.ndarray]:
    """The validation arrays of the requested features (``grad`` is the SFT gradients', written once)."""
    return _computed(proxy, examples, VAL)


def writes_val(cfg: FeatureConfig) -> bool:
    """Whether a requested feature writes to the validation table (a store without one has no val table)."""
    return any(feature_class(name).val_arrays for name in cfg.features)


def store_material(cfg: FeatureConfig, pool: Pool, val: Pool | None) -> dict[str, Any]:
    """What the store's key is hashed from: model and its weights, adapter, pool and validation content, config.

    The weights' digest keeps the features of two builds of one model (``mini`` pretrained on another machine)
    in different stores: a resumed store never mixes them. The config is stored with credentials masked
    (``base_url``'s ``user:password@`` and ``?api_key=``): another key to the same server finds the same store."""
    model = str(Path(cfg.model).resolve()) if Path(cfg.model).exists() else cfg.model
    return {"model": model, "weights": weights_digest(cfg.model), "adapter": dataclasses.asdict(cfg.lora_spec()),
            "pool_hash": pool.content_hash,
            "val_hash": val.content_hash if val is not None else None, "config": redact_config(cfg.to_dict())}


def compute_features(pool_path: str | os.PathLike, val_path: str | os.PathLike | None, cfg: FeatureConfig,
                     out_dir: str | os.PathLike, *, rank: int | None = None, world_size: int | None = None,
                     progress: bool = True, report_data: bool = False) -> FeatureStore:
    """Compute (or finish) the features of ``pool_path`` under ``out_dir/<key>/`` and return the store.

    ``rank``/``world_size`` default to the launcher's environment (1 process without one). ``report_data`` logs
    degenerate data (``data.checks``) on rank 0 as soon as the pools are read, for a caller that shows a user
    their own data (``selectgym features``); a benchmark computing features of the built-in suite leaves it off.
    """
    check_device(cfg.device)  # a GPU named but absent: refused before anything loads
    env_rank, env_world = dist_env()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise SelectgymError(f"rank {rank} is outside world_size {world_size}")
    pool = load_pool(pool_path)
    val = load_pool(val_path) if val_path is not None else None
    if report_data and rank == 0:
        log_report(degenerate_report(pool, val))
    check_pools(cfg, pool, val)
    n_shards = -(-len(pool) // cfg.shard_size)
    material = store_material(cfg, pool, val)
    meta = {"pool_path": str(Path(pool_path).resolve()), "val_path": str(Path(val_path).resolve()) if val_path
            else None, "pool_hash": pool.content_hash, "val_hash": val.content_hash if val is not None else None,
            "pool_format": pool.format, "n_pool": len(pool), "n_val": len(val) if val is not None else 0,
            "model": cfg.model, "weights": material["weights"], "config": material["config"],
            "features": list(cfg.features), "shards": n_shards}
    root = Path(out_dir)
    with process_group(world_size), ExitStack() as held:
        store = _open_store(root, material, meta, rank, world_size, cfg.grad_dtype)
        if store.complete:
            log.info("features already complete at %s", store.path)
            if rank == 0:
                store.mark_latest()
            store.last_run = {"computed": 0, "reused": len(pool)}
            return store
        if rank == 0:
            held.enter_context(store.computing())  # a second run on this store: refused, not a race for shards
        proxy = build_proxy(cfg, pool, store, rank, world_size)
        finished = set(store.finished_shards(TRAIN))
        rows = {i: pool[i * cfg.shard_size:(i + 1) * cfg.shard_size] for i in range(n_shards)}
        mine = [i for i in range(n_shards) if i % world_size == rank and i not in finished]
        with_val = val is not None and writes_val(cfg)
        val_todo = with_val and not store.has_table(VAL)
        log.info("rank %d of %d: computing train shards %s of %d (%d finished before)", rank, world_size, mine,
                 n_shards, len(finished))
        with _progress(sum(len(rows[i]) for i in mine), progress and rank == 0, "features") as advance:
            for i in mine:
                store.write_shard(TRAIN, i, rows[i].ids, train_shard(proxy, list(rows[i])))
                advance(len(rows[i]))
        if rank == 0 and val_todo:
            store.write_shard(VAL, 0, val.ids, val_table(proxy, list(val)))
        barrier(world_size)
        if rank == 0:
            store.mark_complete({TRAIN: n_shards, **({VAL: 1} if with_val else {})})
            store.mark_latest()
        barrier(world_size)
    done = FeatureStore(store.path)
    reused = sum(len(rows[i]) for i in finished)
    done.last_run = {"computed": len(pool) - reused + (len(val) if val_todo else 0), "reused": reused}
    return done


def _open_store(root: Path, material: dict[str, Any], meta: dict[str, Any], rank: int, world_size: int,
                grad_dtype: str) -> FeatureStore:
    """Rank 0 creates the store; the others open it after a barrier."""
    if rank == 0:
        store = FeatureStore.create(root, material, meta, grad_dtype=grad_dtype)
        barrier(world_size)
        return store
    barrier(world_size)
    return FeatureStore.create(root, material, meta, grad_dtype=grad_dtype)


@contextmanager
def _progress(total: int, enabled: bool, desc: str):
    """A tqdm bar in examples (its rate is examples/s); yields ``advance(n)``."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="ex", desc=desc, disable=not enabled, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()


def load_features(path: str | os.PathLike) -> tuple[FeatureTable, FeatureTable | None, FeatureStore]:
    """``(train table, val table or None, store)`` from a folder written by ``compute_features``."""
    store = FeatureStore.open(path)
    val = store.table(VAL) if store.has_table(VAL) else None
    return store.table(TRAIN), val, store

