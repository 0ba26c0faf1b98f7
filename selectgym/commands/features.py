"""Compute proxy features (gradients, losses, lengths, embeddings, DPO gaps, rollout gradients) of a pool.

Example: `selectgym features --config configs/features_tiny.yaml --pool suite/sft.jsonl
--val suite/validation.jsonl --out features/ --features grad,grad_adam,loss,length,embedding`.
Features are saved in shards under <out>/<key>/ (key = hash of model, adapter, pool and settings); a run
that is stopped resumes from its finished shards when started again with the same settings. Under
`torchrun --nproc_per_node N -m selectgym.cli features ...` each process computes its share of the shards.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from selectgym.commands.options import add_config_flag, add_dataclass_arguments
from selectgym.errors import SelectgymError
from selectgym.proxies.store import LATEST_FILE, META_FILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from selectgym.proxies.feature_config import RENAMED, FeatureConfig
    from selectgym.proxies.features import FEATURES, describe_defaults

    add_config_flag(parser)
    parser.add_argument("--pool", default=None, help="training pool file (.jsonl, .json or .parquet)")
    parser.add_argument("--val", default=None, help="validation/target file (needed for validation gradients)")
    parser.add_argument("--out", default="features", help="features root folder; the store is <out>/<key>/")
    parser.add_argument("--features", nargs="+", default=None, help=f"features to compute, comma- or "
                        f"space-separated, of {', '.join(FEATURES)} or a dotted path pkg.mod:Class (default: "
                        f"{describe_defaults()})")
    parser.add_argument("--overwrite", action="store_true", help="write into an --out folder selectgym did not make "
                        "(its files are kept; the store goes to <out>/<key>/)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show a progress bar (examples/s)")
    names = add_dataclass_arguments(parser, FeatureConfig, skip=("features", "options"))
    for cls in FEATURES.values():  # each feature's options, flat: --dpo-beta, --nice-topk
        names += add_dataclass_arguments(parser, cls)
    parser.set_defaults(_config_fields=names, _renamed=RENAMED)


def feature_list(value) -> list[str] | None:
    """``["grad,loss", "length"]`` (flags) or ``"grad, loss"`` / a list (YAML) -> ``["grad", "loss", "length"]``."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    names = [name.strip() for item in items for name in str(item).split(",") if name.strip()]
    if not names:
        raise SelectgymError("--features is empty; name at least one feature, e.g. --features grad,loss")
    return names


def _children(folder: str):
    """Sub-folders of ``folder`` (feature stores live in ``<out>/<key>/``)."""
    path = Path(folder)
    return [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []


def run(args: argparse.Namespace) -> int:
    from selectgym.proxies.feature_config import FeatureConfig

    if not args.pool:
        raise SelectgymError("--pool FILE is required: the training pool to compute features for")
    from selectgym.outputs import claimed_folder

    cfg = FeatureConfig(**{n: getattr(args, n) for n in args._config_fields}, features=feature_list(args.features))
    with claimed_folder(args.out, {"--pool": args.pool, "--val": args.val}, args.overwrite,
                        made_by="selectgym features",
                        own_files=[LATEST_FILE, *(f"{p.name}/{META_FILE}" for p in _children(args.out))]):
        return _compute(args, cfg)


def _compute(args: argparse.Namespace, cfg) -> int:
    from selectgym.proxies.distributed import dist_env
    from selectgym.proxies.features import nice_summary
    from selectgym.proxies.pipeline import compute_features

    rank, _ = dist_env()
    started = time.perf_counter()
    # degenerate data is named (a logged warning, never refused) as the pools are read, before the computation
    store = compute_features(args.pool, args.val, cfg, args.out, progress=args.progress, report_data=True)
    seconds = time.perf_counter() - started
    if rank != 0:
        return 0
    meta, run_stats = store.meta, store.last_run or {}
    computed = run_stats.get("computed", 0)
    rows = f"{meta['n_pool']} examples" + (f" and {meta['n_val']} validation" if meta.get("n_val") else "")
    arrays = ", ".join(f"{name}{shape}" for name, shape in store.table("train").schema().items())
    print(f"features of {rows} in {store.path}")
    print(f"train arrays: {arrays}")
    nice = nice_summary(meta.get("nice"))
    if nice:
        print(f"NICE: {nice}")
    if computed:
        print(f"computed {computed} examples in {seconds:.1f} s with loading and warm-up "
              f"({computed / seconds:.2f} examples/s); {run_stats.get('reused', 0)} came from finished shards")
    else:
        print("already complete: nothing to compute")
    return 0
