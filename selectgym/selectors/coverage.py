"""Cover a target made of subtasks: each candidate's nearest subtask, and the budget shared out among subtasks.

A gradient selector ranks by alignment with the target. When the target mixes subtasks whose gradients differ
in size or coherence, the top of that ranking can all come from one of them: on the built-in suite LESS and
the learned policy took nearly all their picks from one of the two target families, and SmolLM2 fine-tuned on
them scored below a random pick (``benchmarks/results/transfer.md``). Balancing gives each subtask a share of
the budget equal to its share of the target set, filled in the selector's own order from the candidates
nearest that subtask.

"Nearest" is the cosine of a candidate's sentence embedding with each subtask's mean unit embedding, z-scored
per subtask over the pool (which subtask is this example *unusually* close to; raw cosines favour whichever
subtask's examples are most alike). Embeddings, because a small proxy's gradients may not tell similar
subtasks apart: on the built-in suite, `mini`'s gradients put basic_arithmetic and chain_sum examples at chance
between the two, the MiniLM embeddings put all 228 on their own family. Feature stores without the target's
embeddings (computed before it was stored) fall back to the gradients. The subtask labels belong to the target
set, which the user defines (LESS's validation subtasks); nothing here reads the pool's ground truth.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable
from selectgym.proxies.vectors import NonFiniteRows, blockwise_scores, read_target, unit_rows

log = logging.getLogger(__name__)


def subtask_labels(val_examples: Sequence, field: str = "task") -> list[str]:
    """One label per validation example: its ``field`` from the file (top level, else under ``meta``)."""
    labels = []
    for ex in val_examples:
        value = ex.raw.get(field, ex.meta.get(field))
        if value is None:
            raise SelectgymError(f"validation example {ex.id!r} has no {field!r} (top level or under meta): give "
                                 "every target example a subtask label, or leave subtask balance off")
        labels.append(str(value))
    return labels


def subtask_affinity(train: FeatureTable, val: FeatureTable, subtasks: Sequence[str], train_grad: str = "grad",
                     val_grad: str = "grad") -> tuple[np.ndarray, list[str]]:
    """``(N, S)`` z-scored cosines of every training example's embedding (without target embeddings: gradient)
    with each subtask's mean unit validation one, and the ``S`` subtask names in first-seen order."""
    if train.has("embedding") and val.has("embedding"):
        train_grad = val_grad = "embedding"
    else:
        log.warning("subtask balance: no target embeddings in these features (computed before they were stored), "
                    "so subtasks are told apart by gradients; recompute the features for embeddings")
    labels = [str(s) for s in subtasks]
    if len(labels) != len(val):
        raise SelectgymError(f"{len(labels)} subtask labels for {len(val)} validation rows; give one label per "
                             "validation example")
    who = "subtask balance"
    (rows,), keep = read_target(val, [val_grad], who, False, hint="recompute the validation features")
    names = list(dict.fromkeys(labels))
    groups = [np.flatnonzero(np.array(labels, dtype=object)[keep] == g) for g in names]
    targets = np.stack([unit_rows(rows)[g].mean(axis=0, dtype=np.float64) for g in groups]).astype(np.float32)
    bad = NonFiniteRows(train, who, False, hint="recompute those features")
    columns = [blockwise_scores(train, [(train_grad, targets[[s]], 1.0)], lambda sim: sim[:, 0], bad)
               for s in range(len(names))]
    bad.finish()
    sim = np.stack(columns, axis=1)
    std = sim.std(axis=0)
    return np.divide(sim - sim.mean(axis=0), std, out=np.zeros_like(sim), where=std > 1e-12), names


def nearest_subtask(affinity: np.ndarray) -> np.ndarray:
    """The index of each row's nearest subtask (largest z-scored cosine)."""
    return np.argmax(affinity, axis=1)


def subtask_quotas(subtasks: Sequence[str], names: Sequence[str], k: int) -> np.ndarray:
    """Picks per subtask (in ``names`` order), proportional to its share of the target set, summing to ``k``
    (largest remainders get the rounding)."""
    counts = np.array([sum(s == n for s in subtasks) for n in names], dtype=np.float64)
    exact = k * counts / counts.sum()
    quotas = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - quotas), kind="stable")[:k - quotas.sum()]:
        quotas[i] += 1
    return quotas


def subtask_plan(train: FeatureTable, val: FeatureTable, subtasks: Sequence[str], k: int, train_grad: str = "grad",
                 val_grad: str = "grad") -> tuple[np.ndarray, np.ndarray]:
    """What a balanced selection of ``k`` needs: each row's nearest subtask and each subtask's quota."""
    affinity, names = subtask_affinity(train, val, subtasks, train_grad, val_grad)
    return nearest_subtask(affinity), subtask_quotas([str(s) for s in subtasks], names, k)


def balanced_order(scores: np.ndarray, nearest: np.ndarray, quotas: np.ndarray) -> np.ndarray:
    """All rows in the order a balanced selection takes them: each subtask in proportion to its quota.

    A row ranked ``r`` (from 0, by ``scores``) among the rows nearest subtask ``s`` comes at ``(r + 1) /
    quota_s``, ties broken by score; the first ``sum(quotas)`` rows are then exactly each subtask's best
    ``quota_s`` (fewer where a subtask has too few rows, the next best of the others filling in).
    """
    scores = np.asarray(scores, dtype=np.float64)
    position = np.empty(len(scores), dtype=np.float64)
    for s, quota in enumerate(quotas):
        rows = np.flatnonzero(nearest == s)
        ranked = rows[np.argsort(-scores[rows], kind="stable")]
        position[ranked] = (np.arange(len(ranked)) + 1) / quota if quota > 0 else np.inf
    return np.lexsort((-scores, position))


def next_subtask(taken: np.ndarray, quotas: np.ndarray, available: np.ndarray) -> int | None:
    """The subtask to take from next in a step-by-step selection: the one furthest behind its quota (taken /
    quota smallest) that still has open rows; ``None`` when every subtask with a quota is used up."""
    behind = np.where((quotas > 0) & available, taken / np.maximum(quotas, 1), np.inf)
    best = int(np.argmin(behind))
    return None if not np.isfinite(behind[best]) else best
