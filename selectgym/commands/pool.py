"""Build the built-in suite and inspect pool files."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from selectgym.commands.options import add_config_flag, add_dataclass_arguments, dataclass_from_args
from selectgym.data.suite import SuiteConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="pool_command", metavar="ACTION", required=True)
    make = sub.add_parser("make-suite", help="write the built-in task suite (sft, preference, verifiable pools)",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_flag(make)
    make.add_argument("--out", default="suite", help="output folder")
    make.add_argument("--overwrite", action="store_true", help="write into an --out folder selectgym did not make "
                      "(its files of the same names are replaced, the others kept)")
    make.add_argument("--humaneval", action="store_true", help="also write humaneval.jsonl (164 problems)")
    make.set_defaults(_run=run_make_suite, _fields=add_dataclass_arguments(make, SuiteConfig))
    insp = sub.add_parser("inspect", help="counts, format, token lengths and defects of a pool file",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    insp.add_argument("file", help="a .jsonl, .json or .parquet pool")
    insp.add_argument("--format", default="auto", help="auto, alpaca, sharegpt, preference or verifiable")
    insp.add_argument("--tokenizer", default="tiny", help="tokenizer for token lengths (tiny/smollm2 or a path); "
                      "'none' skips them")
    insp.add_argument("--val", default=None, help="a validation file to check against the pool (repeated rows, "
                      "the pool itself, shared prompts)")
    insp.add_argument("--json", action="store_true", help="print the summary as JSON")
    insp.set_defaults(_run=run_inspect)


def run(args: argparse.Namespace) -> int:  # pragma: no cover - argparse always dispatches to an action
    return args._run(args)


def run_make_suite(args: argparse.Namespace) -> int:
    from selectgym.data.humaneval import humaneval_pool
    from selectgym.data.io import save_pool
    from selectgym.data.suite import make_suite
    from selectgym.outputs import claim_folder

    cfg = dataclass_from_args(SuiteConfig, args, args._fields)
    claim_folder(args.out, overwrite=args.overwrite, made_by="selectgym pool make-suite")
    paths = make_suite(args.out, cfg)
    if args.humaneval:
        paths["humaneval"] = save_pool(Path(args.out) / "humaneval.jsonl", humaneval_pool())
    manifest = json.loads(paths["manifest"].read_text())
    print(f"wrote {args.out}/: " + ", ".join(p.name for p in paths.values()))
    print(f"pool {cfg.size} examples ({manifest['useful']} clean and on-target), defects {manifest['defects']}, "
          f"validation {manifest['counts']['validation']}; hash {manifest['hash']}")
    return 0


def summarise(pool, tokenizer=None) -> dict:
    """Counts, format, tasks, defects and token lengths of a pool."""
    summary = {"file": pool.source, "format": pool.format, "examples": len(pool),
               "kinds": dict(Counter(ex.kind for ex in pool)), "content_hash": pool.content_hash}
    tasks = Counter(ex.meta.get("task") for ex in pool if ex.meta.get("task"))
    if tasks:
        summary["tasks"] = dict(sorted(tasks.items()))
    defects = Counter(ex.meta.get("defect") for ex in pool if "defect" in ex.meta)
    if defects:
        summary["defects"] = dict(sorted(defects.items()))
        summary["clean_on_target"] = sum(bool(ex.meta.get("useful")) for ex in pool)
    if tokenizer is not None:
        from selectgym.data.render import render_example

        lengths = sorted(len(render_example(tokenizer, ex, max_length=10**6).input_ids) for ex in pool)
        summary["tokens"] = {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1],
                             "total": sum(lengths)}
    return summary


def run_inspect(args: argparse.Namespace) -> int:
    from selectgym.data.io import load_pool

    pool = load_pool(args.file, args.format)
    tok = None
    if args.tokenizer != "none":
        from selectgym.proxies.models import load_tokenizer

        tok = load_tokenizer(args.tokenizer)
    summary = summarise(pool, tok)
    from selectgym.data.checks import degenerate_report

    warnings = degenerate_report(pool, load_pool(args.val) if args.val else None, pool_duplicates=True)
    for line in warnings:
        print(f"selectgym: warning: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps({**summary, "warnings": warnings}, indent=2))
        return 0
    for key, value in summary.items():
        print(f"{key:>16}: {value}")
    return 0
