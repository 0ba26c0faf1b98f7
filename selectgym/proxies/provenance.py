"""Are a store's features still the features of these files? A pool edited after its features were computed
would otherwise be scored with stale numbers, silently."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selectgym.data.io import load_pool
from selectgym.errors import SelectgymError


def check_unchanged(meta: dict[str, Any], pool_path: str | os.PathLike | None = None,
                    ids: Sequence[str] | None = None) -> None:
    """Raise a one-line error if the pool (``pool_path``, else the one recorded) or the recorded validation file
    no longer has the content the features were computed from. A recorded file that is gone is not checked.

    With ``ids`` (the store's training ids, in row order) the error tells a subset, a shuffle, a pool with other
    examples and an edited pool apart."""
    store = meta.get("store") or meta.get("key") or "the feature store"
    checks = [("pool", pool_path or meta.get("pool_path"), meta.get("pool_hash"), ids),
              ("validation file", meta.get("val_path"), meta.get("val_hash"), None)]
    for what, path, recorded, known in checks:
        if not path or not recorded or not Path(path).exists():
            continue
        pool = load_pool(path)
        now = pool.content_hash
        if now != recorded:
            how = _how_it_differs(pool, known, recorded) if known is not None else None
            if how:
                raise SelectgymError(f"{what} {path} is not the pool the features in {store} were computed on: {how}")
            raise SelectgymError(
                f"{what} {path} has changed since its features in {store} were computed (content hash {now}, "
                f"features computed for {recorded}); recompute them with `selectgym features` on the current file, "
                f"or restore the file")


def _how_it_differs(pool, store_ids: Sequence[str], recorded: str) -> str | None:
    """What tells ``pool`` from the store's pool, by ids, with what to do; None when the ids are the same, in the
    same order (the content changed: the plain message says so)."""
    ids = list(pool.ids)
    mine, theirs = set(ids), set(store_ids)
    recompute = "compute features for this pool with `selectgym features`"
    if ids == list(store_ids):
        return None
    if mine == theirs and len(ids) == len(store_ids):
        same = pool.subset(list(store_ids)).content_hash == recorded
        return (f"it has the same {len(ids)} ids in another order{' (the same examples)' if same else ''}; pass the "
                f"pool file the features were computed on, or {recompute}")
    shared = len(mine & theirs)
    if not shared:
        return (f"it holds other examples (none of its {len(mine)} ids is among the store's {len(theirs)}); pass the "
                f"pool the features were computed on, or {recompute}")
    if mine < theirs:
        return (f"the pool has {len(mine)} of the store's {len(theirs)} ids (a subset); select from the whole pool, "
                f"or {recompute}")
    extra = sorted(mine - theirs)
    return (f"the pool has {shared} of the store's {len(theirs)} ids and {len(extra)} the features lack (first: "
            f"{extra[0]!r}); pass the pool the features were computed on, or {recompute}")
