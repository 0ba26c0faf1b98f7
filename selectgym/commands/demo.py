"""The default run: suite -> proxy features -> agent -> 5% selection -> fine-tuning -> table vs baselines.

Runs on 2 CPU cores in minutes with nothing downloaded: builds the built-in suite, warms up the proxy,
computes features, trains a selection agent, selects 5%, fine-tunes the target on it and on the baselines'
picks, and prints the table with the plot's path. Its settings are `configs/demo.yaml` (shipped inside the
package); every key there is a flag here too, and `--config FILE` or flags override them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from selectgym.bench.config import BenchConfig
from selectgym.commands.bench import claim_bench_folder
from selectgym.commands.options import add_config_flag, add_dataclass_arguments, dataclass_from_args, yaml_defaults

#: the demo's settings, shipped with the package (``configs/demo.yaml`` in a checkout points here)
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flag(parser)
    parser.set_defaults(_fields=add_dataclass_arguments(parser, BenchConfig), _renamed={"feature_dim": "proj_dim"})
    parser.add_argument("--overwrite", action="store_true", help="write into an --out folder selectgym did not make "
                        "(its files of the same names are replaced, the others kept)")
    yaml_defaults(parser, DEMO_CONFIG)


def run(args: argparse.Namespace) -> int:
    from selectgym.bench.harness import run_bench

    start = time.perf_counter()
    cfg = dataclass_from_args(BenchConfig, args, args._fields)
    claim_bench_folder(cfg, args)
    result = run_bench(cfg)
    print(result["table"])
    print(f"plot: {result['plots'][0]} (cost: {result['plots'][1]}); every run: {args.out}/runs.json")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0
