"""Select training examples: a method's scores on computed features, or a trained selection policy.

Examples: `selectgym select --method less --features feats/ --budget 0.05 --out selected.jsonl`;
`selectgym select --method gradalign --features feats/ --option mode=sim --option chunk_size=256`;
`selectgym select --policy policy.zip --pool new.jsonl --budget 0.05`. Writes the chosen examples in the
pool's own format (selection order) and <out stem>.scores.jsonl (id, score, rank, selected) beside them,
then prints how many were chosen, their score range and, for a pool with suite labels, how many are
clean and on-target against the pool's base rate.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selectgym.budget import parse_budget
from selectgym.commands.options import add_config_flag, add_dataclass_arguments
from selectgym.errors import SelectgymError
from selectgym.proxies.store import FeatureStore
from selectgym.registry import parse_options
from selectgym.selectors import SELECTORS

#: the selectors ``--method`` names (a saved policy is applied with ``--policy FILE`` instead)
METHODS = [name for name in SELECTORS if name != "policy"]
#: those that share the budget among the target's subtasks (their classes say so)
BALANCING = SELECTORS.where(lambda cls: cls.balances_subtasks, METHODS)


@dataclass
class SelectConfig:
    """What `selectgym select` does: a method on computed features, or a saved policy on a pool."""

    method: str | None = field(default=None, metadata={
        "help": f"selector name ({', '.join(METHODS)}) or a dotted path 'pkg.mod:Class' to your own Selector"})
    policy: str | None = field(default=None, metadata={
        "help": "a trained selection policy (.zip) to apply instead of a method; 'default' is the policy that ships "
                "with selectgym (trained on the shipped mini's features)"})
    features: str | None = field(default=None, metadata={
        "help": "feature store folder written by `selectgym features`"})
    pool: str | None = field(default=None, metadata={
        "help": "pool file; without it, the pool the features were computed on"})
    val: str | None = field(default=None, metadata={
        "help": "target/validation file: the one to compute a policy's features with, or (with --features) the one "
                "the features were computed with, checked against it"})
    budget: float | None = field(default=None, metadata={
        "help": "share of the pool in (0, 1) like 0.05, or a whole count like 40 (1 is one example; 1.0 is refused "
                "as ambiguous); without it, the method's own default (0.05; dpo_gap 0.1)"})
    out: str = field(default="selected.jsonl", metadata={"help": "where to write the chosen examples (.jsonl)"})
    seed: int = field(default=0, metadata={"help": "seed for ties, rounds and random draws"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace an existing --out file (and its .scores.jsonl); an input of this command is never replaced"})
    option: list[str] = field(default_factory=list, metadata={
        "repeatable": True, "help": "selector options KEY=VALUE, e.g. gradient_type=sgd or mode=accgreedy"})
    balance_subtasks: str | None = field(default=None, metadata={
        "help": "share the budget among the target's subtasks, named by this field of each target example (top "
                "level or under meta, e.g. task), in proportion to their share of the target set; with --policy "
                f"or --method {'/'.join(BALANCING)}"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flag(parser)
    add_dataclass_arguments(parser, SelectConfig)


def load_features(path: str | Path):
    """``(train, val or None, store meta)`` from a feature store folder."""
    if not Path(path).is_dir():
        raise SelectgymError(f"{path}: no such feature folder; compute features with `selectgym features`")
    store = FeatureStore.open(path)
    val = store.table("val") if store.has_table("val") else None
    return store.table("train"), val, dict(store.meta)


def _subtasks(val_path: str | None, field_name: str, val_ids: list[str] | None) -> list[str]:
    """One subtask label per row of the features' validation table, read from ``field_name`` of the target file
    and matched by id (a target file with the same rows in another order gives the same labels)."""
    from selectgym.data import load_pool
    from selectgym.selectors.coverage import subtask_labels

    if not val_path:
        raise SelectgymError("--balance-subtasks needs the target examples: pass --val FILE")
    if val_ids is None:
        raise SelectgymError("--balance-subtasks needs features with a validation table; compute them with --val FILE")
    val_pool = load_pool(val_path)
    by_id = dict(zip(val_pool.ids, subtask_labels(val_pool, field_name), strict=True))
    missing = [i for i in val_ids if i not in by_id]
    if missing:
        raise SelectgymError(f"--balance-subtasks: {len(missing)} validation rows of the features are not in "
                             f"{val_path} (first: {missing[0]!r}); pass the target file the features were computed "
                             "with")
    return [by_id[i] for i in val_ids]


def check_val(meta: dict[str, Any], val_path: str | None, val_ids: list[str] | None, features: str) -> None:
    """``--val`` with ``--features`` must be the target the features were computed with (its rows may come in
    another order): the features are read as they are, so any other file would be silently ignored."""
    from selectgym.data import load_pool

    if not val_path:
        return
    if not Path(val_path).is_file():
        raise SelectgymError(f"--val {val_path}: no such file")
    if val_ids is None:
        raise SelectgymError(f"--val {val_path}: the features in {features} were computed without a validation set, "
                             f"so they cannot align with it; recompute them with `selectgym features --val "
                             f"{val_path}`, or leave --val out")
    given = load_pool(val_path)
    recorded = meta.get("val_hash")
    same_rows = sorted(given.ids) == sorted(val_ids)
    same = given.content_hash == recorded or same_rows and (
        recorded is None or given.subset(val_ids).content_hash == recorded)
    if not same:
        raise SelectgymError(f"--val {val_path} is not the validation set the features in {features} were computed "
                             f"with ({meta.get('val_path')}); the features align with that one, so recompute them "
                             f"with `selectgym features --val {val_path}`, or leave --val out")


def _select_with_method(args: argparse.Namespace):
    from selectgym.proxies.provenance import check_unchanged
    from selectgym.selectors import get_selector, selector_class

    if args.method == "policy":
        raise SelectgymError("--method policy needs the policy file: use --policy FILE.zip instead of --method")
    if not args.features:
        raise SelectgymError("--method needs --features DIR (a folder written by `selectgym features`)")
    options = parse_options(args.option)
    train, val, meta = load_features(args.features)
    val_ids = list(val.ids) if val is not None else None
    check_val(meta, args.val, val_ids, args.features)
    if args.balance_subtasks:
        if not selector_class(args.method).balances_subtasks:
            raise SelectgymError(f"--balance-subtasks works with --method {' or '.join(BALANCING)} and with --policy, "
                                 f"not {args.method}")
        options.update(balance=True, subtasks=_subtasks(args.val or meta.get("val_path"), args.balance_subtasks,
                                                        val_ids))
    selector = get_selector(args.method, **options)
    pool_path = args.pool or meta.get("pool_path")
    if not pool_path:
        raise SelectgymError(f"{args.features} does not record its pool file; pass --pool FILE")
    check_unchanged(meta, pool_path, ids=train.ids)
    budget = parse_budget(args.budget)
    selection = selector.select(train, val, selector.default_budget if budget is None else budget, args.seed)
    if args.method == "nice":
        from selectgym.proxies.features import nice_summary

        summary = nice_summary(meta.get("nice"))
        if summary:
            print(f"NICE: {summary}")
    return selection, pool_path, train.ids


def _select_with_policy(args: argparse.Namespace):
    from selectgym.agents.apply import policy_features
    from selectgym.selectors import get_selector

    if args.option:
        raise SelectgymError("--option applies to --method selectors, not to --policy")
    if not args.pool and not args.features:
        raise SelectgymError("--policy needs --pool FILE (and --val FILE), the pool to select from, or --features DIR "
                             "computed for it")
    pool_path = args.pool
    stored = FeatureStore.open(args.features).meta if args.features else {}
    if args.features:  # read the store as it is: never recompute into (or repoint) a folder the user gave
        pool_path = pool_path or stored.get("pool_path")
        if not pool_path:
            raise SelectgymError(f"{args.features} does not record its pool file; pass --pool FILE")
    train, val, source = policy_features(args.policy, None if args.features else args.pool, args.val, args.features,
                                         pool_path)
    val_ids = list(val.ids) if val is not None else None
    if args.features:
        check_val(stored, args.val, val_ids, args.features)
    subtasks = None
    if args.balance_subtasks:
        subtasks = _subtasks(args.val or stored.get("val_path"), args.balance_subtasks, val_ids)
    selector = get_selector("policy", policy_path=args.policy, subtasks=subtasks)
    if source.get("cached"):
        print(f"features for the policy are cached in {source['path']} ({source['megabytes']:.0f} MB, "
              f"{'computed now' if source['computed'] else 'reused'}); delete that folder to free the space, or "
              f"compute them with `selectgym features --out DIR` and pass --features DIR")
    budget = parse_budget(args.budget)
    selection = selector.select(train, val, selector.default_budget if budget is None else budget, args.seed)
    return selection, pool_path, None


def score_rows(selection, all_ids: list[str] | None) -> list[dict[str, Any]]:
    """Rank 1.. for the chosen examples in selection order, then every other example by score."""
    rows = [{"id": i, "score": float(s), "rank": r, "selected": True}
            for r, (i, s) in enumerate(zip(selection.ids, selection.scores, strict=True), start=1)]
    pool_scores = selection.pool_scores
    if all_ids is None or pool_scores is None or len(pool_scores) != len(all_ids):
        return rows
    chosen = set(selection.ids)
    rest = sorted((i for i in range(len(all_ids)) if all_ids[i] not in chosen), key=lambda i: -pool_scores[i])
    rows += [{"id": all_ids[i], "score": float(pool_scores[i]), "rank": len(rows) + n, "selected": False}
             for n, i in enumerate(rest, start=1)]
    return rows


def label_summary(pool, chosen) -> str | None:
    """'18/25 clean and on-target (72.0%) vs 35.0% in the pool', when the pool carries suite labels."""
    if not any("useful" in ex.meta for ex in pool):
        return None
    hit = sum(bool(ex.meta.get("useful")) for ex in chosen)
    base = sum(bool(ex.meta.get("useful")) for ex in pool) / len(pool)
    return f"{hit}/{len(chosen)} clean and on-target ({100 * hit / len(chosen):.1f}%) vs {100 * base:.1f}% in the pool"


def scores_path_of(out: Path) -> Path:
    """Where the scores of a selection written to ``out`` go: ``<stem>.scores.jsonl`` beside it."""
    return out.with_name(out.stem + ".scores.jsonl")


def claim_outputs(args: argparse.Namespace, out: Path) -> None:
    """Refuse an --out (or its scores file) that is an input, or that exists, unless --overwrite. The pool a
    selection reads is --pool or the one its features record, so both are checked before anything is selected."""
    from selectgym.outputs import claim_file

    inputs = {"--pool": args.pool, "--val": args.val, "--features": args.features,
              "--policy": args.policy, "--config": getattr(args, "config", None)}
    if args.features and Path(args.features).is_dir():  # the files a store records are its inputs too
        meta = FeatureStore.open(args.features).meta
        inputs.update({"the features' pool": meta.get("pool_path"), "the features' validation file":
                       meta.get("val_path")})
    claim_file(out, inputs, args.overwrite)
    claim_file(scores_path_of(out), inputs, args.overwrite, flag="--out (its scores file)")


def run(args: argparse.Namespace) -> int:
    from selectgym.data import load_pool, save_pool
    from selectgym.utils import write_jsonl

    if bool(args.method) == bool(args.policy):
        raise SelectgymError("give exactly one of --method NAME or --policy FILE")
    out = Path(args.out)
    if out.suffix != ".jsonl":
        raise SelectgymError(f"--out {out}: selections are written as JSON lines; use a name ending in .jsonl")
    claim_outputs(args, out)
    selection, pool_path, all_ids = (_select_with_method if args.method else _select_with_policy)(args)
    if not Path(pool_path).exists():
        raise SelectgymError(f"pool file {pool_path} not found; pass --pool FILE")
    pool = load_pool(pool_path)
    chosen = pool.subset(selection.ids)
    save_pool(out, chosen)
    scores_path = scores_path_of(out)
    write_jsonl(scores_path, score_rows(selection, all_ids))

    scores = np.asarray(selection.scores, dtype=np.float64)
    print(f"selected {len(chosen)} of {len(pool)} examples with {selection.method} (seed {args.seed}) -> {out}")
    print(f"scores {scores.min():.4g} to {scores.max():.4g}; all scores and ranks in {scores_path}")
    if selection.info and selection.info.get("rounds"):
        print(f"{len(selection.info['rounds'])} selection rounds of up to {selection.info['chunk_size']} candidates")
    labels = label_summary(pool, chosen)
    if labels:
        print(labels)
    from selectgym.data.checks import pair_warning

    same = pair_warning(list(chosen), str(out), of="selected pairs")  # dpo_gap ranks their gap of 0 high
    if same:
        print(f"selectgym: warning: {same}", file=sys.stderr)
    return 0
