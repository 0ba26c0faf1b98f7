"""Seeded random projections of gradients to ``d`` dimensions (TRAK/LESS), identical on every machine.

Randomness comes from numpy's PCG64 seeded by ``(seed, tag, tile)``, which gives the same stream on any
platform, so train and validation gradients projected on different machines stay comparable. The sparse
(SJLT / count-sketch) projector is the fast default; the dense Rademacher one is what LESS and TRAK use, and
it regenerates its matrix tile by tile so the ``dim_in x dim_out`` matrix is never held.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from selectgym.errors import SelectgymError
from selectgym.registry import Registry

_SJLT_TAG = 1
_RADEMACHER_TAG = 2


class Projector(ABC):
    """A fixed linear map ``(n, dim_in) -> (n, dim_out)`` determined by ``(kind, dim_in, dim_out, seed)``."""

    kind: str = ""

    def __init__(self, dim_in: int, dim_out: int, seed: int = 0) -> None:
        if dim_in < 1 or dim_out < 1:
            raise SelectgymError(f"projection sizes must be >= 1, got dim_in={dim_in}, dim_out={dim_out}")
        self.dim_in, self.dim_out, self.seed = int(dim_in), int(dim_out), int(seed)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Project the rows of ``x``; returns float32 on ``x``'s device."""
        if x.ndim != 2 or x.shape[1] != self.dim_in:
            raise SelectgymError(f"{type(self).__name__} expects (n, {self.dim_in}) rows, got {tuple(x.shape)}; "
                                 "was the projector built for this model's gradient size?")
        return self._project(x.float())

    @abstractmethod
    def _project(self, x: torch.Tensor) -> torch.Tensor: ...

    @classmethod
    def build(cls, dim_in: int, dim_out: int, seed: int = 0) -> Projector:
        """The projector ``make_projector`` asks for by name (a kind that fixes ``dim_out`` ignores it)."""
        return cls(dim_in, dim_out, seed)

    @property
    def config(self) -> dict[str, Any]:
        """What to record next to projected features so that later ones can be checked to match."""
        return {"kind": self.kind, "dim_in": self.dim_in, "dim_out": self.dim_out, "seed": self.seed}


class IdentityProjector(Projector):
    """No projection (``dim_out == dim_in``): exact gradients for tests and very small adapters."""

    kind = "none"

    def __init__(self, dim_in: int, dim_out: int | None = None, seed: int = 0) -> None:
        if dim_out is not None and dim_out != dim_in:
            raise SelectgymError(f"the identity projection keeps dim_out == dim_in ({dim_in}), got {dim_out}")
        super().__init__(dim_in, dim_in, seed)

    @classmethod
    def build(cls, dim_in: int, dim_out: int, seed: int = 0) -> Projector:
        return cls(dim_in, seed=seed)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return x


class SJLTProjector(Projector):
    """Sparse JL transform: each input coordinate adds ``±x_j/sqrt(nnz)`` to ``nnz`` output coordinates.

    The output is split into ``nnz`` equal blocks with one hash per block, so a coordinate never hits the same
    output twice; the signs are independent, so ``E<Pa, Pb> = <a, b>``. Cost is ``O(nnz * n * dim_in)``.
    """

    kind = "sjlt"

    def __init__(self, dim_in: int, dim_out: int = 8192, seed: int = 0, nnz: int = 1) -> None:
        super().__init__(dim_in, dim_out, seed)
        if nnz < 1 or dim_out % nnz:
            raise SelectgymError(f"SJLT nnz must be >= 1 and divide dim_out={dim_out}, got {nnz}")
        self.nnz = int(nnz)
        rng = np.random.default_rng([self.seed, _SJLT_TAG, self.dim_in, self.dim_out, self.nnz])
        block = dim_out // nnz
        index = rng.integers(0, block, size=(nnz, dim_in)) + block * np.arange(nnz)[:, None]
        sign = np.where(rng.integers(0, 2, size=(nnz, dim_in), dtype=np.int8) == 1, 1.0, -1.0) / math.sqrt(nnz)
        self._index = torch.from_numpy(index.astype(np.int64))
        self._sign = torch.from_numpy(sign.astype(np.float32))

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "nnz": self.nnz}

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if self._index.device != x.device:
            self._index, self._sign = self._index.to(x.device), self._sign.to(x.device)
        out = torch.zeros(x.shape[0], self.dim_out, dtype=torch.float32, device=x.device)
        for k in range(self.nnz):
            out.index_add_(1, self._index[k], x * self._sign[k])
        return out


class RademacherProjector(Projector):
    """Dense ``±1/sqrt(dim_out)`` matrix, regenerated in tiles of input rows for each call.

    The matrix depends only on ``(seed, dim_in, dim_out)``: tile ``t`` (rows ``t*TILE ...``) comes from its
    own generator seeded by ``(seed, t)``, and ``block_size`` only sets how many rows one matmul covers.
    Generating the matrix dominates the cost, so project many rows per call.
    """

    kind = "rademacher"
    TILE = 1024

    def __init__(self, dim_in: int, dim_out: int = 8192, seed: int = 0, block_size: int = 16384) -> None:
        super().__init__(dim_in, dim_out, seed)
        if block_size < 1:
            raise SelectgymError(f"block_size must be >= 1, got {block_size}")
        self.block_size = max(self.TILE, block_size // self.TILE * self.TILE)
        self._values = np.array([-1.0, 1.0], dtype=np.float32) / math.sqrt(dim_out)

    def _tile(self, t: int) -> np.ndarray:
        rows = min(self.TILE, self.dim_in - t * self.TILE)
        rng = np.random.default_rng([self.seed, _RADEMACHER_TAG, self.dim_out, t])
        bits = np.unpackbits(np.frombuffer(rng.bytes(math.ceil(rows * self.dim_out / 8)), dtype=np.uint8))
        return self._values[bits[:rows * self.dim_out]].reshape(rows, self.dim_out)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of the matrix (``start`` a multiple of ``TILE``), float32 on the CPU."""
        tiles = range(start // self.TILE, math.ceil(stop / self.TILE))
        return torch.from_numpy(np.concatenate([self._tile(t) for t in tiles])[:stop - start])

    def matrix(self) -> torch.Tensor:
        """The whole ``(dim_in, dim_out)`` matrix; only sensible for small sizes (tests, inspection)."""
        return self.rows(0, self.dim_in)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.dim_out, dtype=torch.float32, device=x.device)
        for start in range(0, self.dim_in, self.block_size):
            stop = min(start + self.block_size, self.dim_in)
            out.addmm_(x[:, start:stop], self.rows(start, stop).to(x.device))
        return out


#: projection name -> class; a dotted path ``pkg.mod:Class`` names your own ``Projector``.
PROJECTORS = Registry("projection", {"sjlt": SJLTProjector, "rademacher": RademacherProjector,
                                     "none": IdentityProjector}, base=Projector)
PROJECTIONS = tuple(PROJECTORS)


def make_projector(kind: str, dim_in: int, dim_out: int = 8192, seed: int = 0) -> Projector:
    """A projector by name: ``sjlt`` (fast default), ``rademacher`` (dense, as LESS/TRAK) or ``none``."""
    return PROJECTORS.resolve(kind).build(dim_in, dim_out, seed)
