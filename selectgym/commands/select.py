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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from selectgym.budget import parse_budget
from selectgym.commands.options import add_config_flag, add_dataclass_arguments
from selectgym.errors import SelectgymError
from selectgym.proxies.store import FeatureStore


@dataclass
class SelectConfig:
    """What `selectgym select` does: a method on computed features, or a saved policy on a pool."""

    method: str | None = field(default=None, metadata={
        "help": "selector name (random, less, nice, gradalign, dpo_gap) or a dotted path 'pkg.mod:Class' to your "
                "own Selector"})
    policy: str | None = field(default=None, metadata={
        "help": "a trained selection policy (.zip) to apply instead of a method"})
    features: str | None = field(default=None, metadata={
        "help": "feature store folder written by `selectgym features`"})
    pool: str | None = field(default=None, metadata={
        "help": "pool file; without it, the pool the features were computed on"})
    val: str | None = field(default=None, metadata={"help": "target/validation file (with --policy)"})
    budget: float | None = field(default=None, metadata={
        "help": "share of the pool in (0, 1) like 0.05, or a whole count like 40 (1 is one example; 1.0 is refused "
                "as ambiguous); without it, the method's own default (0.05; dpo_gap 0.1)"})
    out: str = field(default="selected.jsonl", metadata={"help": "where to write the chosen examples (.jsonl)"})
    seed: int = field(default=0, metadata={"help": "seed for ties, rounds and random draws"})
    option: list[str] = field(default_factory=list, metadata={
        "repeatable": True, "help": "selector options KEY=VALUE, e.g. gradient_type=sgd or mode=accgreedy"})
    balance_subtasks: str | None = field(default=None, metadata={
        "help": "share the budget among the target's subtasks, named by this field of each target example (top "
                "level or under meta, e.g. task), in proportion to their share of the target set; with --policy "
                "or --method less/nice"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flag(parser)
    add_dataclass_arguments(parser, SelectConfig)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["mode=sim", "q=4"]`` -> ``{"mode": "sim", "q": 4}``; values are read as YAML scalars or lists."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise SelectgymError(f"--option takes KEY=VALUE (like mode=sim), got {pair!r}")
        try:
            options[key.strip().replace("-", "_")] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise SelectgymError(f"--option {pair!r}: the value is not a readable number, word or list") from None
    return options


def load_features(path: str | Path):
    """``(train, val or None, store meta)`` from a feature store folder."""
    if not Path(path).is_dir():
        raise SelectgymError(f"{path}: no such feature folder; compute features with `selectgym features`")
    store = FeatureStore.open(path)
    val = store.table("val") if store.has_table("val") else None
    return store.table("train"), val, dict(store.meta)


def _subtasks(val_path: str | None, field_name: str) -> list[str]:
    """One subtask label per target example, read from ``field_name`` of the target file."""
    from selectgym.data import load_pool
    from selectgym.selectors.coverage import subtask_labels

    if not val_path:
        raise SelectgymError("--balance-subtasks needs the target examples: pass --val FILE")
    return subtask_labels(load_pool(val_path), field_name)


def _select_with_method(args: argparse.Namespace):
    from selectgym.proxies.provenance import check_unchanged
    from selectgym.selectors import get_selector

    if args.method == "policy":
        raise SelectgymError("--method policy needs the policy file: use --policy FILE.zip instead of --method")
    if not args.features:
        raise SelectgymError("--method needs --features DIR (a folder written by `selectgym features`)")
    options = parse_options(args.option)
    train, val, meta = load_features(args.features)
    if args.balance_subtasks:
        if args.method not in ("less", "nice"):
            raise SelectgymError(f"--balance-subtasks works with --method less or nice and with --policy, not "
                                 f"{args.method}")
        options.update(balance=True, subtasks=_subtasks(args.val or meta.get("val_path"), args.balance_subtasks))
    selector = get_selector(args.method, **options)
    pool_path = args.pool or meta.get("pool_path")
    if not pool_path:
        raise SelectgymError(f"{args.features} does not record its pool file; pass --pool FILE")
    check_unchanged(meta, pool_path)
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
    subtasks = None
    if args.balance_subtasks:
        subtasks = _subtasks(args.val or stored.get("val_path"), args.balance_subtasks)
    selector = get_selector("policy", policy_path=args.policy, subtasks=subtasks)
    train, val, source = policy_features(args.policy, None if args.features else args.pool, args.val, args.features,
                                         pool_path)
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


def run(args: argparse.Namespace) -> int:
    from selectgym.data import load_pool, save_pool
    from selectgym.utils import write_jsonl

    if bool(args.method) == bool(args.policy):
        raise SelectgymError("give exactly one of --method NAME or --policy FILE")
    out = Path(args.out)
    if out.suffix != ".jsonl":
        raise SelectgymError(f"--out {out}: selections are written as JSON lines; use a name ending in .jsonl")
    selection, pool_path, all_ids = (_select_with_method if args.method else _select_with_policy)(args)
    if not Path(pool_path).exists():
        raise SelectgymError(f"pool file {pool_path} not found; pass --pool FILE")
    pool = load_pool(pool_path)
    chosen = pool.subset(selection.ids)
    save_pool(out, chosen)
    scores_path = out.with_name(out.stem + ".scores.jsonl")
    write_jsonl(scores_path, score_rows(selection, all_ids))

    scores = np.asarray(selection.scores, dtype=np.float64)
    print(f"selected {len(chosen)} of {len(pool)} examples with {selection.method} (seed {args.seed}) -> {out}")
    print(f"scores {scores.min():.4g} to {scores.max():.4g}; all scores and ranks in {scores_path}")
    if selection.info and selection.info.get("rounds"):
        print(f"{len(selection.info['rounds'])} selection rounds of up to {selection.info['chunk_size']} candidates")
    labels = label_summary(pool, chosen)
    if labels:
        print(labels)
    return 0
