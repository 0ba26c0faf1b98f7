"""Several processes sharing one feature run (``torchrun``): who am I, a process group, barriers."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch.distributed as dist


def dist_env() -> tuple[int, int]:
    """``(rank, world_size)`` from the ``RANK``/``WORLD_SIZE`` variables torchrun and accelerate set."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@contextmanager
def process_group(world_size: int) -> Iterator[None]:
    """A gloo process group for barriers when several processes share the work (and none exists yet)."""
    if world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        yield
        return
    dist.init_process_group("gloo", timeout=datetime.timedelta(hours=12))
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(world_size: int) -> None:
    """Wait for every process (nothing to wait for alone)."""
    if world_size > 1:
        dist.barrier()
