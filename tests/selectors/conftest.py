"""Tiny hand-made feature tables for selector tests."""

from __future__ import annotations

import numpy as np
import pytest

from selectgym.proxies.table import FeatureTable


def _make(n: int | None = None, meta: dict | None = None, **arrays) -> FeatureTable:
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    n = n if n is not None else len(next(iter(arrays.values())))
    return FeatureTable([f"ex{i}" for i in range(n)], arrays, meta or {})


@pytest.fixture()
def make_table():
    """``make_table(grad=[[...]], meta={...})`` -> a FeatureTable with ids ex0, ex1, ..."""
    return _make
