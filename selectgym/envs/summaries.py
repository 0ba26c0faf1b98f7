"""Per-example proxy features for the selection envs, and the K-means clusters they are summarised over.

Every feature is scale-free, so per-cluster summaries mean the same thing on any pool:

=============  =========================================================================================
``alignment``  cos(train gradient, target direction), in [-1, 1]; the target direction is the mean validation
               gradient (``mean``) or, as in LESS, the mean of the unit validation gradients (``unit_mean``:
               every target example counts once, however large its gradient)
``pass_rate``  share of rollouts the verifier accepted, in [0, 1]
``dpo_gap``    DPO implicit reward gap, z-scored over the pool and clipped to [-5, 5]
``loss``       SFT loss, z-scored and clipped
``length``     log(1 + response tokens), z-scored and clipped
=============  =========================================================================================

A feature the table lacks is a column of zeros, and its presence flag is 0.

Both scale to pools of 10^6 rows over a lazily opened store: ``alignment`` reads the gradients a block at a
time in float32, and a pool larger than ``KMEANS_SAMPLE`` is clustered by K-means on a seeded sample of
that size, every row then assigned to its nearest centre a block at a time.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np

from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable, iter_blocks
from selectgym.proxies.vectors import NonFiniteRows, blockwise_scores, check_dims, read_target, unit_rows
from selectgym.utils import standardise

log = logging.getLogger(__name__)

FEATURES = ("alignment", "pass_rate", "dpo_gap", "loss", "length")
#: every feature lies in [-FEATURE_BOUND, FEATURE_BOUND].
FEATURE_BOUND = 5.0
#: pools larger than this are clustered on a seeded sample of this many rows (then assigned in blocks).
KMEANS_SAMPLE = 20_000


def zscore(x: np.ndarray, bound: float | None = FEATURE_BOUND) -> np.ndarray:
    """``(x - mean) / std`` over the pool, clipped to ``[-bound, bound]`` (``None``: not clipped); a constant
    column is all zeros, so one flat feature never divides by zero."""
    z = standardise(x)
    return z if bound is None else np.clip(z, -bound, bound)


def require_finite(table: FeatureTable, name: str, which: str = "training") -> np.ndarray:
    """``table[name]``, or a one-line error naming the rows with NaN/inf (a NaN hidden as 0 would change picks)."""
    values = table.get(name)
    rows = np.flatnonzero(~np.isfinite(np.asarray(values).reshape(len(values), -1)).all(axis=1))
    if len(rows):
        ids = ", ".join(str(table.ids[i]) for i in rows[:3]) + (" ..." if len(rows) > 3 else "")
        raise SelectgymError(f"feature {name!r} of the {which} table is NaN or infinite in {len(rows)} row(s) "
                             f"({ids}); recompute the features (a diverged proxy: lower warmup_lr) or drop those "
                             f"examples")
    return values


#: how the target direction of ``alignment`` is formed from the validation gradients
ALIGNMENT_TARGETS = ("mean", "unit_mean")


def alignment(table: FeatureTable, val_table: FeatureTable, train_grad: str = "grad",
              val_grad: str = "grad", target: str = "mean") -> np.ndarray:
    """cos(g_i, t) for every training example (0 where a gradient is all zeros), where t is the mean validation
    gradient (``target="mean"``) or the mean of the unit validation gradients (``"unit_mean"``, LESS's direction:
    a few target examples with large gradients do not outweigh the rest).

    Read a block at a time in float32; a row or validation row with NaN or inf is an error naming it.
    """
    if target not in ALIGNMENT_TARGETS:
        raise SelectgymError(f"alignment target {target!r} is unknown; choose from {', '.join(ALIGNMENT_TARGETS)}")
    who, hint = "the selection env", "recompute those features"
    (val_rows,), _ = read_target(val_table, [val_grad], who, False, hint=hint)
    if target == "unit_mean":
        val_rows = unit_rows(val_rows)
    target = val_rows.mean(axis=0, dtype=np.float64)
    check_dims(np.shape(table.get(train_grad)), (1, *target.shape), f"train {train_grad!r}", f"validation {val_grad!r}")
    norm = float(np.linalg.norm(target))
    unit = (target / norm if norm > 0 else target).astype(np.float32)
    bad = NonFiniteRows(table, who, False, hint=hint)
    scores = blockwise_scores(table, [(train_grad, unit[None], 1.0)], lambda sim: sim[:, 0], bad)
    bad.finish()
    return scores


#: the arrays the built-in features are made from (everything else one-valued is a feature under its own name)
_BUILTIN_SOURCES = ("pass_rate", "dpo_gap", "loss", "length")


def scalar_arrays(table: FeatureTable) -> list[str]:
    """The table's other one-value-per-example arrays: features an env observes by name, z-scored like the loss
    (a feature added to ``selectgym.proxies.features`` needs no change here)."""
    return sorted(n for n, a in table.arrays.items() if n not in _BUILTIN_SOURCES and np.ndim(a) == 1)


def observed_columns(features: Sequence[str] | None) -> list[str]:
    """The observation's feature columns: the built-in ``FEATURES`` (absent ones are zero columns with a 0
    presence flag, so the shape stays put), then every other scalar feature asked for, in order."""
    return [*FEATURES, *(f for f in dict.fromkeys(features or ()) if f not in FEATURES)]


def available_features(table: FeatureTable, val_table: FeatureTable | None, train_grad: str = "grad",
                       val_grad: str = "grad") -> list[str]:
    """The built-in ``FEATURES`` these tables can provide, then the table's other scalar arrays."""
    have = {
        "alignment": table.has(train_grad) and val_table is not None and val_table.has(val_grad),
        "pass_rate": table.has("pass_rate"),
        "dpo_gap": table.has("dpo_gap"),
        "loss": table.has("loss"),
        "length": table.has("length"),
    }
    return [name for name in FEATURES if have[name]] + scalar_arrays(table)


def _lacking(missing: list[str], have: list[str], table: FeatureTable) -> str:
    """Why the tables cannot give ``missing`` and what to do: a name no feature writes is a typo (the valid names
    are listed), a vector array is not one number per example, a known one is recomputed with its feature."""
    from selectgym.proxies.features import FEATURES as COMPUTED
    from selectgym.proxies.features import feature_of_array

    arrays = {a for cls in COMPUTED.values() for a in (*cls.train_arrays, *cls.val_arrays)}
    unknown = [f for f in missing if f not in FEATURES and f.partition("@")[0] not in arrays and f not in table.arrays]
    if unknown:
        return (f"features lack {unknown}: {'that is' if len(unknown) == 1 else 'those are'} not a known feature or "
                f"array; observe any of {', '.join(have) or 'none'} (what these features hold), or leave observe unset")
    vectors = [f for f in missing if f in table.arrays]
    if vectors:
        return (f"features lack {vectors} as one number per example (they hold a vector per example); observe any of "
                f"{', '.join(have) or 'none'}, or leave observe unset")
    wanted = sorted({"grad" if f == "alignment" else feature_of_array(f) for f in missing})
    return (f"features lack {missing} (they provide {have}); recompute them with `selectgym features --features "
            f"{','.join(wanted)}`{' and --val FILE' if 'alignment' in missing else ''}, or leave those out")


def feature_matrix(table: FeatureTable, val_table: FeatureTable | None, features: Sequence[str] | None = None,
                   train_grad: str = "grad", val_grad: str = "grad",
                   alignment_target: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """``(X, present)``: X is (N, len(observed_columns(features))) float64, present a 0/1 flag per column.

    ``features=None`` uses every built-in feature the tables have; a list asks for exactly those, and may name
    any other scalar array of the table; a missing one is an error naming what is absent.
    """
    for setting, name, tab in (("train_grad", train_grad, table), ("val_grad", val_grad, val_table)):
        if tab is not None and name != "grad" and not tab.has(name):  # "grad" may be absent: no alignment then
            vectors = sorted(n for n, a in tab.arrays.items() if np.ndim(a) == 2)
            raise SelectgymError(f"{setting} {name!r} is not an array of these {'validation ' * (tab is val_table)}"
                                 f"features; use one of {', '.join(vectors) or 'none (they hold no gradients)'}")
    have = available_features(table, val_table, train_grad, val_grad)
    if features is None:
        features = [f for f in have if f in FEATURES]
    missing = [f for f in features if f not in have]
    if missing:
        raise SelectgymError(_lacking(missing, have, table))
    columns = observed_columns(features)
    x = np.zeros((len(table), len(columns)))
    present = np.zeros(len(columns))
    for j, name in enumerate(columns):
        if name not in features:
            continue
        present[j] = 1.0
        if name == "alignment":
            x[:, j] = alignment(table, val_table, train_grad, val_grad, alignment_target)
        elif name == "pass_rate":
            x[:, j] = np.clip(np.asarray(require_finite(table, "pass_rate"), dtype=np.float64), 0.0, 1.0)
        elif name == "length":
            x[:, j] = zscore(np.log1p(np.asarray(require_finite(table, "length"), dtype=np.float64)))
        else:
            x[:, j] = zscore(np.asarray(require_finite(table, name), dtype=np.float64))
    if not np.isfinite(x).all():
        raise SelectgymError("features contain NaN or infinite values; check the losses and gradients")
    return x, present


def example_matrix(table: FeatureTable, val_table: FeatureTable | None, features: Sequence[str] | None = None,
                   train_grad: str = "grad", val_grad: str = "grad",
                   alignment_target: str = "mean") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(X, present, columns)``: ``feature_matrix`` plus ``alignment_z``, the alignment z-scored within the pool
    (the raw cosine's scale differs between pools and proxies; its rank within the pool does not)."""
    x, present = feature_matrix(table, val_table, features, train_grad, val_grad, alignment_target)
    columns = observed_columns(features)
    x = np.concatenate([x, zscore(x[:, columns.index("alignment")])[:, None]], axis=1)
    return x, present, [*columns, "alignment_z"]


def cluster_labels(table: FeatureTable, n_clusters: int, seed: int = 0, feature: str = "embedding") -> np.ndarray:
    """K-means (scikit-learn, seeded) cluster label of every row of ``table[feature]``.

    Up to ``KMEANS_SAMPLE`` rows: K-means on all of them. Beyond: K-means on a seeded sample of
    ``KMEANS_SAMPLE`` rows, then every row goes to its nearest centre, a block at a time, so memory stays
    bounded and the labels depend only on the data and the seed.
    """
    from sklearn.cluster import KMeans

    arr = table.get(feature)
    n = len(arr)
    if n_clusters < 1 or n < n_clusters:
        raise SelectgymError(f"cannot make {n_clusters} clusters from {n} examples; "
                             f"use n_clusters between 1 and {n}")
    sample = None if n <= KMEANS_SAMPLE else np.sort(np.random.default_rng(seed).choice(n, KMEANS_SAMPLE,
                                                                                          replace=False))
    data = np.asarray(arr if sample is None else arr[sample], dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if not np.isfinite(data).all():
        raise SelectgymError(f"the {feature!r} array used for clustering holds NaN or inf; recompute the features")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate points make sklearn warn about fewer distinct clusters
        km = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit(data)
    if sample is None:
        return km.labels_.astype(np.int64)
    return nearest_centre(arr, km.cluster_centers_, feature)


def nearest_centre(arr, centres: np.ndarray, feature: str = "embedding") -> np.ndarray:
    """Index of the nearest of ``centres`` (squared Euclidean) for every row of ``arr``, a block at a time."""
    centres = np.asarray(centres, dtype=np.float64)
    centres_t = centres.T.astype(np.float32)
    centre_sq = (centres * centres).sum(axis=1)
    labels = np.empty(len(arr), dtype=np.int64)
    for where, x in iter_blocks(arr, reuse=True):
        x = x.reshape(len(x), -1)
        if not np.isfinite(x).all():
            raise SelectgymError(f"the {feature!r} array used for clustering holds NaN or inf; recompute the features")
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centre
        labels[where] = np.argmin(centre_sq[None, :] - 2.0 * (x @ centres_t), axis=1)
    return labels
