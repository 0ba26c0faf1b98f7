"""Apply a saved policy to a pool: features (computed if needed), a deterministic rollout, the selected ids."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selectgym.agents.policy_file import VAL_FEATURES, SavedPolicy, load_policy
from selectgym.errors import SelectgymError
from selectgym.proxies.feature_config import FeatureConfig
from selectgym.proxies.pipeline import compute_features, load_features
from selectgym.proxies.provenance import check_unchanged
from selectgym.proxies.table import FeatureTable
from selectgym.selectors.base import Selection
from selectgym.selectors.coverage import next_subtask, subtask_plan
from selectgym.utils import cache_dir, stable_hash

if TYPE_CHECKING:
    from selectgym.envs.example_select import ExampleSelectEnv

log = logging.getLogger(__name__)

#: an ExampleSelect rollout scores the whole pool at most this many times; a larger budget is taken in blocks
FULL_PASSES = 256
#: a block's shortlist holds this many candidates per pick of the block (the best of the whole-pool scoring)
SHORTLIST_PER_PICK = 4


def features_for(policy: SavedPolicy, pool_path: str | Path | None, val_path: str | Path | None,
                 features_dir: str | Path | None, pool_check: str | Path | None = None,
                 features_out: str | Path | None = None) -> tuple[FeatureTable, FeatureTable | None, dict[str, Any]]:
    """The features a policy acts on, and where they came from (``path``, ``computed``, ``cached``, ``megabytes``).

    With ``features_dir`` the store there is read as it is (never recomputed or repointed), after checking that
    ``pool_check`` (a pool file) still has the content it was computed from. Otherwise the features of
    ``pool_path`` (and ``val_path``) are computed with the feature config recorded with the policy, into
    ``features_out`` or a cache folder under ``$SELECTGYM_CACHE/features`` (reused when the same pool comes again).
    """
    if features_dir is None and pool_path is None:
        raise SelectgymError("give a pool file (and its validation file) or a features folder to apply a policy to")
    if features_dir is not None:
        train, val, store = load_features(features_dir)
        check_unchanged(store.meta, pool_check, ids=train.ids)
        return train, val, {"path": str(store.path), "computed": False, "cached": False}
    config = policy.sidecar.get("feature_config")
    if not config:
        raise SelectgymError(f"policy {policy.path.name} does not record a feature config; compute features with "
                             f"`selectgym features` and pass their folder")
    wanted = policy.sidecar["observation"].get("features") or []
    if val_path is None and any(f in VAL_FEATURES for f in wanted):
        raise SelectgymError(f"policy {policy.path.name} observes {', '.join(f for f in wanted if f in VAL_FEATURES)} "
                             f"against a target set: pass --val FILE (the target/validation examples)")
    key = stable_hash({"pool": str(Path(pool_path).resolve()), "val": str(Path(val_path).resolve())
                       if val_path else None, "config": config})
    folder = Path(features_out) if features_out is not None else cache_dir() / "features" / key
    log.info("computing the policy's features into %s (delete it to free the space)", folder)
    store = compute_features(pool_path, val_path, FeatureConfig.from_dict(config), folder, progress=False)
    train, val, _ = load_features(folder)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    computed = bool(store.last_run and store.last_run.get("computed"))
    return train, val, {"path": str(folder), "computed": computed, "cached": features_out is None,
                        "megabytes": size / 2**20}


def policy_features(policy_path: str | Path, pool_path: str | Path | None, val_path: str | Path | None,
                    features_dir: str | Path | None, pool_check: str | Path | None = None):
    """``features_for`` by the policy's path: ``(train, val, where they came from)``."""
    return features_for(load_policy(policy_path), pool_path, val_path, features_dir, pool_check)


def rollout(policy: SavedPolicy, table: FeatureTable, val_table: FeatureTable | None, budget: float | int,
            seed: int = 0, subtasks: Sequence[str] | None = None) -> tuple[np.ndarray, list[int]]:
    """Roll the policy out greedily (best open cluster each step): table rows in selection order, clusters chosen.

    A policy of an env that ``scores_candidates`` (ExampleSelect) is not limited to its training chunk: its scorer
    rates every open example of the pool and the best is taken (no clusters to report); see
    :func:`greedy_in_blocks` for budgets above ``FULL_PASSES``. With ``subtasks`` (one label per validation row)
    each step takes from the target subtask furthest behind its share of the budget, among the examples nearest
    that subtask (``selectgym.selectors.coverage``), rescoring those examples at every step."""
    env = policy.make_env(table, val_table, budget)
    obs, _ = env.reset(seed=seed)
    if env.scores_candidates:  # the shared scorer rates every open example
        scorer = policy.model.policy
        if subtasks is None:
            greedy_in_blocks(env, scorer.score)
            return env.selected_rows(), []
        balance = _Balance(policy, table, val_table, subtasks, env.budget)
        while len(env.taken) < env.budget:
            rows = balance.rows(env.open)
            row = int(rows[np.argmax(scorer.score(env.candidate_matrix(rows)))])
            env.take(row)
            balance.took(row)
        return env.selected_rows(), []
    if subtasks is not None:
        raise SelectgymError(f"subtask balance needs a policy that picks single examples (ExampleSelect); "
                             f"{policy.path.name} picks clusters")
    slots, terminated = [], False
    while not terminated:
        obs, _, terminated, _, info = env.step(policy.act(obs, env.action_masks()))
        slots.append(info["slot"])
    return env.selected_rows(), slots


def greedy_in_blocks(env: ExampleSelectEnv, score, passes: int = FULL_PASSES) -> None:
    """Fill ``env``'s budget with the scorer's best open example at each pick, scoring the whole pool at most
    ``passes`` times.

    Rescoring all N open examples after each of B picks costs N x B (hours at a million rows). With
    ``B <= passes`` that is what happens, pick by pick. Otherwise picks come in blocks of ``m = ceil(B / passes)``:
    one scoring of the whole pool, a shortlist of its best ``SHORTLIST_PER_PICK * m`` examples, then ``m`` exact
    picks among the shortlist (each rescored with the budget left and its redundancy with every pick so far),
    and one matrix product brings the whole pool's redundancy up to date. The only approximation is that an
    example outside the shortlist cannot overtake it within a block.
    """
    per_pass = -(-env.budget // passes)
    unit = env.state.unit
    while len(env.taken) < env.budget:
        open_rows = np.flatnonzero(env.open)
        scores = score(env.candidate_matrix(open_rows))
        if per_pass == 1:
            env.take(int(open_rows[np.argmax(scores)]))
            continue
        m = min(per_pass, env.budget - len(env.taken))
        k = min(len(open_rows), SHORTLIST_PER_PICK * m)
        short = open_rows[np.argpartition(-scores, k - 1)[:k]]
        short_unit = unit[short]  # gathered once per block, not once per pick
        red, live, picked = env.redundancy[short].copy(), np.ones(k, dtype=bool), []
        for _ in range(m):
            at = np.flatnonzero(live)
            best = int(at[np.argmax(score(env.candidate_matrix(short[at], red[at])))])
            row = int(short[best])
            env.take(row, update_redundancy=False)
            live[best] = False
            picked.append(row)
            red = np.maximum(red, short_unit @ unit[row])
        env.update_redundancy(picked)


class _Balance:
    """Which rows a balanced rollout may take from next: those nearest the subtask furthest behind its quota."""

    def __init__(self, policy: SavedPolicy, table: FeatureTable, val_table: FeatureTable | None,
                 subtasks: Sequence[str], budget: int) -> None:
        if val_table is None:
            raise SelectgymError("subtask balance needs the target's features: pass --val FILE")
        kwargs = policy.sidecar["env_kwargs"]
        self.nearest, self.quotas = subtask_plan(table, val_table, subtasks, budget, kwargs.get("train_grad", "grad"),
                                                 kwargs.get("val_grad", "grad"))
        self.taken = np.zeros(len(self.quotas))

    def rows(self, open_rows: np.ndarray) -> np.ndarray:
        available = np.array([(open_rows & (self.nearest == s)).any() for s in range(len(self.quotas))])
        s = next_subtask(self.taken, self.quotas, available)
        return np.flatnonzero(open_rows if s is None else open_rows & (self.nearest == s))

    def took(self, row: int) -> None:
        self.taken[self.nearest[row]] += 1


def apply_policy(policy_path: str | Path, pool_path: str | Path | None = None, *, budget: float | int, seed: int = 0,
                 val_path: str | Path | None = None, features_dir: str | Path | None = None,
                 table: FeatureTable | None = None, val_table: FeatureTable | None = None,
                 pool_check: str | Path | None = None, features_out: str | Path | None = None,
                 subtasks: Sequence[str] | None = None) -> Selection:
    """Select ``budget`` examples of a pool with a saved policy; ids come back in selection order.

    Features come from ``table``/``val_table`` if given, else from the store in ``features_dir`` (read as it is),
    else they are computed for ``pool_path`` (and ``val_path``) with the feature config recorded with the policy,
    into ``features_out`` or the cache. Scores count down from ``k`` (first pick) to 1; ``info`` lists the
    clusters chosen step by step and, for features read or computed here, where they are. ``subtasks``: one
    label per validation row, to share the budget among the target's subtasks (``rollout``).
    """
    policy = load_policy(policy_path)
    source = None
    if table is None:
        table, val_table, source = features_for(policy, pool_path, val_path, features_dir, pool_check, features_out)
    rows, slots = rollout(policy, table, val_table, budget, seed, subtasks)
    k = len(rows)
    info: dict[str, Any] = {"policy": str(policy.path), "algorithm": policy.sidecar["algorithm"],
                            "env_id": policy.sidecar["env_id"], "clusters": slots, "seed": seed,
                            "subtask_balance": subtasks is not None}
    if source is not None:
        info["features"] = source
    return Selection([table.ids[i] for i in rows], np.arange(k, 0, -1, dtype=np.float64), "policy", None, info)
