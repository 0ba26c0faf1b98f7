"""LESS: rank training examples by the cosine of their (Adam-normalised) gradient with target gradients.

``score(z) = mean_j cos(P g_adam(z), P g(v_j))``. With several checkpoints (arrays ``name@ckpt`` and
``train.meta["checkpoints"] = {ckpt: mean_lr}``) each checkpoint's cosine matrix is weighted by its mean
learning rate (normalised to sum to 1) and summed, as LESS does, before the validation rows are
aggregated. With validation subtasks the rows are averaged within each subtask, and the best subtask
counts: an example that helps one target task a lot is worth keeping even if it is neutral elsewhere.

Computed block by block in float32 over the training rows, each against one target vector per
(checkpoint, subtask): the mean of the unit validation gradients, since the mean of cosines is the cosine
numerator against that mean. ``aggregate_subtasks`` on the full (N, M) matrix is the reference.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from selectgym.budget import resolve_budget
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable
from selectgym.proxies.vectors import EXCLUDED, NonFiniteRows, blockwise_scores, read_target, too_few_left, unit_rows
from selectgym.selectors.base import Selection, Selector, check_flag
from selectgym.selectors.coverage import balanced_order, subtask_plan
from selectgym.utils import standardise

GRADIENT_TYPES = {"adam": "grad_adam", "sgd": "grad"}


def checkpoint_weights(train: FeatureTable) -> dict[str, float] | None:
    """``{ckpt: weight}`` from ``train.meta["checkpoints"]`` (mean LRs normalised to sum 1), or None."""
    lrs = train.meta.get("checkpoints")
    if not lrs:
        return None
    values = [float(v) for v in lrs.values()]
    if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise SelectgymError(f"checkpoint learning rates must be finite, >= 0 and not all 0, got {dict(lrs)}; "
                             "fix meta['checkpoints'] in the training features")
    total = sum(values)
    return {str(c): v / total for c, v in zip(lrs, values, strict=True)}


def aggregate_subtasks(sim: np.ndarray, labels: Sequence[str] | None) -> np.ndarray:
    """``(N, M)`` similarities -> ``(N,)``: mean within each subtask, then the max over subtasks."""
    if labels is None:
        return sim.mean(axis=1)
    labels = list(labels)
    if len(labels) != sim.shape[1]:
        raise SelectgymError(f"{len(labels)} subtask labels for {sim.shape[1]} validation rows; give one label "
                             "per validation example")
    groups = dict.fromkeys(labels)
    per_task = [sim[:, [j for j, lab in enumerate(labels) if lab == g]].mean(axis=1) for g in groups]
    return np.max(np.stack(per_task, axis=1), axis=1)


def gradient_match_scores(train: FeatureTable, val: FeatureTable, train_feature: str, val_feature: str,
                          subtasks: Sequence[str] | None, selector: str = "less", skip_nonfinite: bool = False
                          ) -> np.ndarray:
    """The LESS score of every training row against ``val``'s rows (checkpoints and subtasks applied).

    Read block by block in float32 (``blockwise_scores``); a training row with NaN or inf scores
    ``EXCLUDED`` under ``skip_nonfinite`` (else: an error), a validation row with NaN or inf is dropped
    (else: an error).
    """
    weights = checkpoint_weights(train)
    pairs = ([(train_feature, val_feature, 1.0)] if weights is None else
             [(f"{train_feature}@{c}", f"{val_feature}@{c}", w) for c, w in weights.items()])
    for a, b, _ in pairs:  # both names first: a missing array is reported before anything is read
        train.get(a), val.get(b)
    labels = subtasks if subtasks is not None else val.meta.get("subtasks")
    if labels is not None and len(list(labels)) != len(val):
        raise SelectgymError(f"{len(list(labels))} subtask labels for {len(val)} validation rows; give one label "
                             "per validation example")
    targets, keep = read_target(val, [b for _, b, _ in pairs], selector, skip_nonfinite)
    labels = ["all"] * int(keep.sum()) if labels is None else [lab for lab, k in zip(labels, keep, strict=True) if k]
    groups = [np.flatnonzero(np.array(labels, dtype=object) == g) for g in dict.fromkeys(labels)]
    # mean_j cos(x, v_j) = <x / |x|, mean_j v_j / |v_j|>: one target row per subtask instead of one per
    # validation row (the same number up to rounding, and M times less arithmetic)
    units = [unit_rows(t) for t in targets]
    terms = [(a, np.stack([u[g].mean(axis=0, dtype=np.float64) for g in groups]).astype(np.float32), w)
             for (a, _, w), u in zip(pairs, units, strict=True)]
    bad = NonFiniteRows(train, selector, skip_nonfinite)
    scores = blockwise_scores(train, terms, lambda sim: sim.max(axis=1), bad)
    bad.finish()
    return scores


def finite_number(x: object) -> bool:
    """A real number (not a bool) that is finite as a float: numpy scalars pass, a huge integer does not."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def minus_loss(scores: np.ndarray, train: FeatureTable, weight: float, selector: str = "less",
               skip_nonfinite: bool = False) -> np.ndarray:
    """The z-scored ``scores`` minus ``weight`` times the z-scored proxy ``loss`` of each training row (both over
    the rows still in play). Rows already ``EXCLUDED`` stay so; a row with a NaN or inf loss is an error, or joins
    them under ``skip_nonfinite`` (``NonFiniteRows``, as every selector reads a feature)."""
    bad = NonFiniteRows(train, selector, skip_nonfinite)
    loss = bad.check_vector("loss", np.asarray(train.get("loss"), dtype=np.float64).reshape(len(train)))
    kept = scores != EXCLUDED
    kept[bad.finish()] = False
    out = np.full(len(scores), EXCLUDED)
    out[kept] = standardise(scores[kept]) - weight * standardise(loss[kept])
    return out


@dataclass
class LessSelector(Selector):
    """LESS (Xia et al., 2024): mean cosine of the training gradient with each validation SFT gradient.

    Options: ``gradient_type`` ``adam`` (default, reads ``grad_adam``) or ``sgd`` (raw ``grad``);
    ``subtasks``: one label per validation row (default: ``val.meta["subtasks"]``, else one task);
    ``skip_nonfinite``: leave rows with NaN or inf gradients out (training rows never selected, validation
    rows dropped) with a warning that counts them, instead of stopping with an error; ``balance``: share the
    budget among the subtasks in proportion to their share of the target set, each filled from the examples
    nearest it (``selectgym.selectors.coverage``), so one subtask cannot take every pick; ``loss_weight``: when
    not 0, the score is the z-scored LESS score minus ``loss_weight`` times the z-scored proxy loss (the ``loss``
    feature), so that of two examples equally aligned with the target the one the proxy finds less surprising
    wins: garbled and mislabelled examples align by their large gradients. LESS on SGD gradients with
    ``loss_weight`` 1 is the best fixed rule of the headline (``benchmarks/results/headline_rules.md``).
    """

    gradient_type: str = "adam"
    subtasks: Sequence[str] | None = None
    skip_nonfinite: bool = False
    balance: bool = False
    loss_weight: float = 0.0

    name: ClassVar[str] = "less"
    val_feature: ClassVar[str] = "grad"
    needs: ClassVar[tuple[str, ...]] = ("sft",)
    balances_subtasks: ClassVar[bool] = True
    reselects: ClassVar[tuple[str, ...]] = ("sft",)

    def __post_init__(self) -> None:
        if not isinstance(self.gradient_type, str) or self.gradient_type not in GRADIENT_TYPES:
            raise SelectgymError(f"gradient_type must be one of {', '.join(GRADIENT_TYPES)}, "
                                 f"got {self.gradient_type!r}")
        check_flag(self.name, "skip_nonfinite", self.skip_nonfinite)
        check_flag(self.name, "balance", self.balance)
        if not finite_number(self.loss_weight):
            raise SelectgymError(f"{self.name} option loss_weight must be a finite number (1 subtracts the z-scored "
                                 f"loss once), got {reprlib.repr(self.loss_weight)}")

    def score(self, train: FeatureTable, val: FeatureTable | None, rng: np.random.Generator) -> np.ndarray:
        val = self.require_val(val)
        scores = gradient_match_scores(train, val, GRADIENT_TYPES[self.gradient_type], self.val_feature,
                                       self.subtasks, self.name, self.skip_nonfinite)
        if self.loss_weight:
            scores = minus_loss(scores, train, float(self.loss_weight), self.name, self.skip_nonfinite)
        return scores

    def select(self, train: FeatureTable, val: FeatureTable | None, budget: float | int, seed: int) -> Selection:
        if not self.balance:
            return super().select(train, val, budget, seed)
        val = self.require_val(val)
        labels = self.subtasks if self.subtasks is not None else val.meta.get("subtasks")
        if labels is None:
            raise SelectgymError(f"{self.name} balance needs one subtask label per validation row: pass subtasks "
                                 "(or record meta['subtasks'] in the validation features)")
        k = resolve_budget(budget, len(train))
        scores = self.check_scores(self.score(train, val, np.random.default_rng(seed)), len(train))
        nearest, quotas = subtask_plan(train, val, labels, k, GRADIENT_TYPES[self.gradient_type], self.val_feature)
        order = balanced_order(scores, nearest, quotas)
        order = order[scores[order] != EXCLUDED][:k]
        if len(order) < k:
            raise too_few_left(k, len(order))
        return Selection([train.ids[i] for i in order], scores[order], self.name, scores, {"subtask_balance": True})
