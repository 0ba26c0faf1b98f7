"""Blockwise vector math over feature tables: cosines of (N, d) rows with a few target rows, in bounded memory.

Selectors score with it and the selection envs observe with it, so it lives on the floor both stand on.
Rows are read a block at a time in float32 (``blockwise_scores``), so a pool of 10^6 rows at d = 8192 is
scored without a float64 copy of the array or an (N, M) similarity matrix. Rows with NaN or inf are found
block by block as they are read: an error naming the table, the array and the rows, or (``skip``) rows left
out with a counted warning; a left-out training row scores ``EXCLUDED``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable, block_size, iter_blocks

log = logging.getLogger(__name__)

#: the score of a training row left out for NaN/inf features (``skip_nonfinite``): never selected.
EXCLUDED = -np.inf


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm; an all-zero row stays zero (its cosine with anything is 0).

    The whole-array float64 reference the blockwise scorer is tested against.
    """
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` cosine similarities between the rows of ``a`` and ``b`` (whole arrays, float64)."""
    check_dims(np.shape(a), np.shape(b))
    return normalise_rows(a) @ normalise_rows(b).T


def check_dims(train_shape: tuple, target_shape: tuple, train_name: str = "training", target_name: str = "target"
               ) -> None:
    """Training and target rows must come from the same projection."""
    if tuple(train_shape[1:]) != tuple(target_shape[1:]):
        raise SelectgymError(f"{train_name} rows have shape {tuple(train_shape[1:])} but {target_name} rows "
                             f"{tuple(target_shape[1:])}; compute both feature tables with the same projection "
                             "(same proj_dim and seed)")


def too_few_left(k: int, left: int) -> SelectgymError:
    """The error for a budget larger than the rows left after skipping NaN/inf ones."""
    return SelectgymError(f"asked for {k} examples but only {left} are left after skipping rows with NaN or inf "
                          f"features; lower the budget or recompute those features")


class NonFiniteRows:
    """The rows of one table found holding NaN or inf, per array, while a selector reads them.

    ``finish()`` raises one error naming the table, the arrays, the first few ids and the count, or with
    ``skip`` logs a warning that counts them and returns the row positions to leave out.
    """

    def __init__(self, table: FeatureTable, selector: str, skip: bool, hint: str | None = None) -> None:
        self.table, self.selector, self.skip = table, selector, skip
        self.hint = hint or ("recompute those features, or pass the selector option skip_nonfinite=True to leave "
                             "those rows out")
        self.rows: dict[str, list[np.ndarray]] = {}

    def add(self, name: str, positions: np.ndarray) -> None:
        if len(positions):
            self.rows.setdefault(name, []).append(np.asarray(positions, dtype=np.int64))

    def check_vector(self, name: str, values: np.ndarray) -> np.ndarray:
        """``values`` (one number per row) with their non-finite rows recorded; those become 0."""
        bad = ~np.isfinite(values)
        if bad.any():
            self.add(name, np.flatnonzero(bad))
            values = np.where(bad, 0.0, values)
        return values

    def positions(self) -> np.ndarray:
        found = [p for parts in self.rows.values() for p in parts]
        return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)

    def finish(self) -> np.ndarray:
        """Row positions to leave out (empty when all were finite); an error unless ``skip``."""
        bad = self.positions()
        if not len(bad):
            return bad
        where = f"table {self.table.name!r}" + (f" of {self.table.meta['store']}" if "store" in self.table.meta else "")
        per_array = "; ".join(f"{name!r}: {len(np.unique(np.concatenate(parts)))} row(s), e.g. "
                              f"{', '.join(repr(self.table.ids[int(i)]) for i in np.unique(np.concatenate(parts))[:3])}"
                              for name, parts in sorted(self.rows.items()))
        if not self.skip:
            raise SelectgymError(f"{self.selector}: NaN or inf in {where} ({per_array}); {self.hint}")
        log.warning("%s: leaving out %d of %d rows of %s with NaN or inf features (%s); skip_nonfinite=True",
                    self.selector, len(bad), len(self.table), where, per_array)
        return bad


def read_target(table: FeatureTable, names: Sequence[str], selector: str, skip: bool, hint: str | None = None
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """Target (validation) arrays read whole as float32 (they are small), and the rows kept.

    A row with NaN or inf in any of ``names`` is an error, or with ``skip`` left out of every array.
    """
    bad = NonFiniteRows(table, selector, skip, hint)
    arrays = []
    for name in names:
        x = np.concatenate([b for _, b in iter_blocks(table.get(name))]) if len(table) else np.zeros(
            (0, *np.shape(table.get(name))[1:]), dtype=np.float32)
        bad.add(name, np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1)))
        arrays.append(x)
    keep = np.ones(len(table), dtype=bool)
    keep[bad.finish()] = False
    if not keep.any():
        raise SelectgymError(f"{selector}: every row of table {table.name!r} holds NaN or inf; recompute the "
                             "validation features")
    return [x[keep] for x in arrays], keep


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of a small float array scaled to unit length in float32 (zero rows stay zero)."""
    x64 = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x64, axis=-1, keepdims=True)
    return np.divide(x64, norms, out=np.zeros_like(x64), where=norms > 0).astype(np.float32)


def row_norms(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 L2 norms, rows holding NaN or inf) of a float32 block; finite rows whose squares overflow
    float32 get their norm from float64 instead of being reported."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    suspect = np.flatnonzero(~np.isfinite(norms))
    if not len(suspect):
        return norms, suspect
    nonfinite = ~np.isfinite(x[suspect]).all(axis=1)
    overflow = suspect[~nonfinite]
    if len(overflow):
        norms[overflow] = np.linalg.norm(x[overflow].astype(np.float64), axis=1).astype(np.float32)
    return norms, suspect[nonfinite]


def blockwise_scores(train: FeatureTable, terms: Sequence[tuple[str, np.ndarray, float]],
                     reduce: Callable[[np.ndarray], np.ndarray], bad: NonFiniteRows, *,
                     rows: np.ndarray | None = None, normalise: bool = True) -> np.ndarray:
    """``reduce(sum_t w_t * cos(x_t, T_t))`` for each training row, read a block of rows at a time.

    ``terms`` are ``(train array name, target rows T (M, d), weight w)``; with several terms (checkpoints)
    every array is read for the same block. ``normalise=False`` uses the dot product instead of the cosine.
    Blocks are float32 and at most ``BLOCK_BYTES`` each; only a (block, M) matrix is ever held. Rows holding
    NaN or inf are recorded in ``bad`` and score ``EXCLUDED``. ``rows`` restricts scoring to those row
    positions (a GradAlign round's chunk); scores come back in ``rows`` order.
    """
    arrays = [(train.get(name), name, np.ascontiguousarray(target.T, dtype=np.float32), float(w))
              for name, target, w in terms]
    for arr, name, target_t, _ in arrays:
        check_dims(np.shape(arr), (target_t.shape[1], target_t.shape[0]), f"training {name!r}", "target")
    n = len(train) if rows is None else len(rows)
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    block_rows = min(block_size(arr) for arr, *_ in arrays)
    readers = [iter_blocks(arr, rows=rows, block_rows=block_rows, reuse=True) for arr, *_ in arrays]
    for blocks in zip(*readers, strict=True):
        where = blocks[0][0]
        positions = np.arange(where.start, where.stop) if rows is None else rows[where]
        acc = None
        skipped = np.zeros(len(positions), dtype=bool)
        for (_, x), (_, name, target_t, w) in zip(blocks, arrays, strict=True):
            norms, nonfinite = row_norms(x)
            if len(nonfinite):
                bad.add(name, positions[nonfinite])
                skipped[nonfinite] = True
                x[nonfinite] = 0.0
                norms[nonfinite] = 0.0
            prod = x @ target_t
            if normalise:
                np.divide(prod, norms[:, None], out=prod, where=norms[:, None] > 0)
                prod[norms == 0] = 0.0
            if w != 1.0:
                prod *= np.float32(w)
            acc = prod if acc is None else acc + prod
        scores = np.asarray(reduce(acc), dtype=np.float64)
        scores[skipped] = EXCLUDED
        out[where] = scores
    return out
