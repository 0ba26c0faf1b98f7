"""Pools: loading, normalising and rendering training data, and the built-in task suite."""

from selectgym.data.io import load_pool, save_pool, to_record
from selectgym.data.pool import Example, Pool

__all__ = ["Example", "Pool", "load_pool", "save_pool", "to_record"]
