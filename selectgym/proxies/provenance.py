"""Are a store's features still the features of these files? A pool edited after its features were computed
would otherwise be scored with stale numbers, silently."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from selectgym.data.io import load_pool
from selectgym.errors import SelectgymError


def check_unchanged(meta: dict[str, Any], pool_path: str | os.PathLike | None = None) -> None:
    """Raise a one-line error if the pool (``pool_path``, else the one recorded) or the recorded validation file
    no longer has the content the features were computed from. A recorded file that is gone is not checked."""
    store = meta.get("store") or meta.get("key") or "the feature store"
    checks = [("pool", pool_path or meta.get("pool_path"), meta.get("pool_hash")),
              ("validation file", meta.get("val_path"), meta.get("val_hash"))]
    for what, path, recorded in checks:
        if not path or not recorded or not Path(path).exists():
            continue
        now = load_pool(path).content_hash
        if now != recorded:
            raise SelectgymError(
                f"{what} {path} has changed since its features in {store} were computed (content hash {now}, "
                f"features computed for {recorded}); recompute them with `selectgym features` on the current file, "
                f"or restore the file")
