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


def run(args: argparse.Namespace) -> int:
    from selectgym.bench.harness import run_bench

    result = run_bench(dataclass_from_args(BenchConfig, args, args._fields))
    print(result["table"])
    print(f"runs: {args.out}/runs.json; plots: {', '.join(result['plots'])}")
    return 0
