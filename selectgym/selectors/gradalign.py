"""GradAlign (arXiv 2602.21492): pick GRPO problems whose policy gradient points where the target's does.

Reads the training table's ``grpo_grad`` (one projected GRPO gradient per candidate problem, zero when
its rollouts all got the same reward), ``grpo_signal`` and ``pass_rate``, and, for ``sim``/``dot``, the
validation table's ``grpo_grad``, pooled as the sum of its rows and L2-normalised.

Modes (the paper's ``--mode``):
    ``sim``        cos(g_c, g_V) (default)
    ``dot``        <g_c, g_V / |g_V|>
    ``align``      cos(g_c, pooled gradient of the round's own candidates); no validation set
    ``learnalign`` mean_j V_c V_j cos(g_c, g_j) over the round's candidates, V = p(1-p), p = pass rate
    ``accgreedy``  pass rate closest to 0.5 first (score = -|p - 0.5|)
    ``rand``       a seeded uniform draw from the round's chunk
A candidate without reward signal scores 0 in ``sim``, ``dot``, ``align`` and ``learnalign``.

Rounds, as in the paper: the pool is shuffled (seeded) and cut into chunks of ``chunk_size`` (M);
round r scores chunk r only and keeps its best ``chunk_size // q``. ``select`` runs rounds in order and
stops as soon as the budget is met (the last round keeps only what is still needed), so the budget
decides how many rounds run; a budget the rounds cannot fill is an error. Without ``q`` the budget is
spread over all chunks in proportion to their size. Without ``chunk_size`` the whole pool is one chunk,
which is plain top-k. A candidate's ``sim``/``dot`` score does not depend on its round, so those modes read
the pool once, block by block; ``align`` and ``learnalign`` read each round's chunk (twice: its pooled
direction, then the scores), never more. ``skip_nonfinite`` leaves candidates with NaN or inf features
out (never selected) and drops such validation rows, with a warning that counts them; by default they are
an error. ``batch_size`` and ``iters_per_select`` describe the GRPO schedule the selection
feeds; when given, the paper's check ``(q * batch_size * iters_per_select) % chunk_size == 0`` applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from selectgym.budget import resolve_budget
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable, iter_blocks
from selectgym.proxies.vectors import (
    EXCLUDED,
    NonFiniteRows,
    blockwise_scores,
    normalise_rows,
    read_target,
    row_norms,
    unit_rows,
)
from selectgym.selectors.base import Selection, Selector, check_flag, top_k

MODES = ("sim", "dot", "align", "learnalign", "accgreedy", "rand")
NEEDS_VAL = ("sim", "dot")


def pooled_direction(grads: np.ndarray) -> np.ndarray:
    """The sum of the rows, L2-normalised (zero if the rows sum to zero)."""
    return normalise_rows(np.asarray(grads, dtype=np.float64).sum(axis=0, keepdims=True))[0]


def weighted_row_sum(train: FeatureTable, name: str, rows: np.ndarray, weights: np.ndarray, unit: bool,
                     bad: NonFiniteRows) -> np.ndarray:
    """``sum_i weights_i * x_i`` (``x_i / |x_i|`` with ``unit``) over ``rows``, read a block at a time.

    Rows holding NaN or inf are recorded in ``bad`` and left out of the sum.
    """
    arr = train.get(name)
    total = np.zeros(int(np.prod(np.shape(arr)[1:])), dtype=np.float64)
    for where, x in iter_blocks(arr, rows=rows, reuse=True):
        norms, nonfinite = row_norms(x)
        w = np.asarray(weights[where], dtype=np.float32)
        if len(nonfinite):
            bad.add(name, rows[where][nonfinite])
            x[nonfinite] = 0.0
            w = w.copy()
            w[nonfinite] = 0.0
        if unit:
            w = np.divide(w, norms, out=np.zeros_like(w), where=norms > 0)
        total += w @ x
    return total


def _divisors_near(total: int, target: int, low: int, n: int = 3) -> list[int]:
    divisors = [d for d in range(max(low, 1), total + 1) if total % d == 0]
    return sorted(sorted(divisors, key=lambda d: (abs(d - target), d))[:n])


@dataclass
class GradAlignSelector(Selector):
    """GradAlign and its baselines (LearnAlign, AccGreedy, random) with the paper's selection rounds."""

    mode: str = "sim"
    chunk_size: int | None = None
    q: int | None = None
    batch_size: int | None = None
    iters_per_select: int | None = None
    skip_nonfinite: bool = False

    name: ClassVar[str] = "gradalign"
    needs: ClassVar[tuple[str, ...]] = ("verifiable",)
    reselects: ClassVar[tuple[str, ...]] = ("grpo",)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SelectgymError(f"gradalign mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        check_flag(self.name, "skip_nonfinite", self.skip_nonfinite)
        for key in ("chunk_size", "q", "batch_size", "iters_per_select"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise SelectgymError(f"gradalign {key} must be a whole number >= 1, got {value!r}")
        if self.q is not None and self.chunk_size is not None and self.q > self.chunk_size:
            raise SelectgymError(f"q={self.q} keeps chunk_size // q = 0 problems per round; use q <= {self.chunk_size}")
        if self.batch_size is not None or self.iters_per_select is not None:
            self._check_schedule()

    def _check_schedule(self) -> None:
        if None in (self.chunk_size, self.q, self.batch_size, self.iters_per_select):
            raise SelectgymError("a GRPO schedule needs all of chunk_size, q, batch_size and iters_per_select")
        m, q, b, i = self.chunk_size, self.q, self.batch_size, self.iters_per_select
        total = q * b * i
        if total % m == 0:
            return
        chunks = _divisors_near(total, m, low=q)
        iters = i + (-i) % (m // math.gcd(m, q * b))
        batch = b + (-b) % (m // math.gcd(m, q * i))
        raise SelectgymError(f"(q * batch_size * iters_per_select) % chunk_size must be 0, but ({q} * {b} * {i}) % {m} "
                             f"= {total % m}; use chunk_size in {chunks}, or iters_per_select={iters}, "
                             f"or batch_size={batch}")

    @property
    def needs_val(self) -> bool:
        return self.mode in NEEDS_VAL

    def rounds(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Row positions of each round's chunk: a seeded shuffle of the pool cut into ``chunk_size`` pieces."""
        order = rng.permutation(n)
        m = self.chunk_size or n
        return [order[s:s + m] for s in range(0, n, m)]

    def _val_direction(self, val: FeatureTable | None) -> np.ndarray | None:
        if not self.needs_val:
            return None
        (grads,), _ = read_target(self.require_val(val), ["grpo_grad"], self.name, self.skip_nonfinite)
        direction = unit_rows(grads.sum(axis=0, dtype=np.float64)[None])[0]
        if not direction.any():
            raise SelectgymError("the pooled validation GRPO gradient is zero (every validation problem's rollouts "
                                 "got equal rewards); use more rollouts, a harder/easier target set, or mode=align")
        return direction

    def _vector(self, train: FeatureTable, name: str, bad: NonFiniteRows) -> np.ndarray:
        """A one-number-per-row array as float64, its NaN/inf rows recorded in ``bad`` (read once per table)."""
        values = train.derived(("gradalign_vector", name), lambda: np.asarray(train.get(name), dtype=np.float64))
        return bad.check_vector(name, values)

    def chunk_scores(self, train: FeatureTable, chunk: np.ndarray, val_dir: np.ndarray | None,
                     rng: np.random.Generator, bad: NonFiniteRows | None = None) -> np.ndarray:
        """Scores of one round's candidates (``chunk`` = their row positions), in chunk order.

        Candidates with NaN or inf features score ``EXCLUDED`` and are recorded in ``bad``; without ``bad``
        they are reported here (an error, or a warning with ``skip_nonfinite``).
        """
        if bad is None:
            bad = NonFiniteRows(train, self.name, self.skip_nonfinite)
            scores = self.chunk_scores(train, chunk, val_dir, rng, bad)
            bad.finish()
            return scores
        if self.mode == "rand":
            return rng.random(len(chunk))
        if self.mode == "accgreedy":
            return -np.abs(self._vector(train, "pass_rate", bad)[chunk] - 0.5)
        signal = self._vector(train, "grpo_signal", bad)[chunk] > 0
        first = lambda sim: sim[:, 0]  # noqa: E731
        if self.mode in ("sim", "dot"):
            whole = len(chunk) == len(train) and np.array_equal(chunk, np.arange(len(train)))
            scores = blockwise_scores(train, [("grpo_grad", val_dir[None], 1.0)], first, bad,
                                      rows=None if whole else chunk, normalise=self.mode == "sim")
        elif self.mode == "align":
            pooled = weighted_row_sum(train, "grpo_grad", chunk, signal.astype(np.float64), False, bad)
            scores = blockwise_scores(train, [("grpo_grad", unit_rows(pooled[None]), 1.0)], first, bad, rows=chunk)
        else:  # learnalign: mean_j V_c V_j cos(g_c, g_j) = V_c * <g_c/|g_c|, sum_j V_j g_j/|g_j|> / len(chunk)
            p = self._vector(train, "pass_rate", bad)[chunk]
            learnability = p * (1.0 - p)
            pooled = weighted_row_sum(train, "grpo_grad", chunk, learnability, True, bad)
            scores = blockwise_scores(train, [("grpo_grad", pooled[None], 1.0)], first, bad, rows=chunk)
            excluded = scores == EXCLUDED
            scores = np.where(excluded, EXCLUDED, learnability * np.where(excluded, 0.0, scores) / len(chunk))
        return np.where(signal | (scores == EXCLUDED), scores, 0.0)

    def _all_scores(self, train: FeatureTable, val: FeatureTable | None, chunks: list[np.ndarray],
                    rng: np.random.Generator) -> np.ndarray:
        val_dir = self._val_direction(val)
        bad = NonFiniteRows(train, self.name, self.skip_nonfinite)
        scores = np.zeros(len(train))
        if self.mode in ("sim", "dot"):  # round-independent: one sequential pass, the same numbers
            scores = self.chunk_scores(train, np.arange(len(train)), val_dir, rng, bad)
        else:
            for chunk in chunks:
                scores[chunk] = self.chunk_scores(train, chunk, val_dir, rng, bad)
        scores[bad.finish()] = EXCLUDED
        return self.check_scores(scores, len(train))

    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        """Every candidate's score within its round (the rounds drawn from ``rng``), in pool order."""
        return self._all_scores(train, val, self.rounds(len(train), rng), rng)

    def quotas(self, chunks: list[np.ndarray], k: int) -> list[int]:
        """How many each round keeps: ``chunk_size // q`` until ``k`` is met, or ``k`` spread by chunk size."""
        sizes = [len(c) for c in chunks]
        if self.q is not None:
            per = (self.chunk_size or sum(sizes)) // self.q
            out, left = [], k
            for size in sizes:
                take = min(per, size, left)
                out.append(take)
                left -= take
            if left:
                raise SelectgymError(f"budget {k} is more than {len(chunks)} rounds keeping chunk_size // q = {per} "
                                     f"each can give ({k - left}); lower q or the budget")
            return out
        exact = [k * s / sum(sizes) for s in sizes]
        out = [math.floor(e) for e in exact]
        by_remainder = sorted(range(len(sizes)), key=lambda r: (-(exact[r] - out[r]), r))
        for r in by_remainder[:k - sum(out)]:
            out[r] += 1
        return out

    def select(self, train: FeatureTable, val: FeatureTable | None, budget: float | int, seed: int) -> Selection:
        """The union of each round's picks, in round order, until the budget is met."""
        k = resolve_budget(budget, len(train))
        rng = np.random.default_rng(seed)
        chunks = self.rounds(len(train), rng)
        scores = self._all_scores(train, val, chunks, rng)
        picked: list[int] = []
        rounds: list[dict[str, Any]] = []
        for r, (chunk, quota) in enumerate(zip(chunks, self.quotas(chunks, k), strict=True)):
            if len(picked) == k:
                break
            chosen = chunk[top_k(scores[chunk], quota, rng)]
            picked.extend(int(i) for i in chosen)
            rounds.append({"round": r, "chunk": [train.ids[i] for i in chunk],
                           "picked": [train.ids[i] for i in chosen]})
        info = {"mode": self.mode, "chunk_size": self.chunk_size or len(train), "q": self.q, "rounds": rounds}
        return Selection([train.ids[i] for i in picked], scores[picked], self.name, scores, info)
