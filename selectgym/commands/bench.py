"""Benchmark selection methods: methods x budgets x seeds -> runs.json, table.md and plots.

Example: `selectgym bench --config configs/bench_tiny.yaml` or
`selectgym bench --methods policy nice gradalign:sim random full --seeds 0 1 2 --out bench-out`.
"""

from __future__ import annotations

import argparse

from selectgym.bench.config import BenchConfig
from selectgym.commands.options import add_config_flag, add_dataclass_arguments, dataclass_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flag(parser)
    parser.set_defaults(_fields=add_dataclass_arguments(parser, BenchConfig), _renamed={"feature_dim": "proj_dim"})
    parser.add_argument("--overwrite", action="store_true", help="write into an --out folder selectgym did not make "
                        "(its files of the same names are replaced, the others kept)")


def claim_bench_folder(cfg: BenchConfig, args: argparse.Namespace) -> None:
    """A benchmark resumes in a folder it made (``runs.json``); any other non-empty folder needs --overwrite, and
    the folder may not be one of its inputs."""
    from selectgym.outputs import claim_folder

    claim_folder(cfg.out, {"suite_dir": cfg.suite_dir, "policy_path": cfg.policy_path,
                           "--config": getattr(args, "config", None)}, args.overwrite,
                 made_by="selectgym bench", own_files=["runs.json"])


def run(args: argparse.Namespace) -> int:
    from selectgym.bench.harness import run_bench

    cfg = dataclass_from_args(BenchConfig, args, args._fields)
    claim_bench_folder(cfg, args)
    result = run_bench(cfg)
    print(result["table"])
    print(f"runs: {args.out}/runs.json; plots: {', '.join(result['plots'])}")
    return 0
