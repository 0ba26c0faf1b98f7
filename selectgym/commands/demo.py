"""The default run: suite -> proxy features -> agent -> 5% selection -> fine-tuning -> table vs baselines.

Runs on 2 CPU cores in minutes with the tiny proxy and target and nothing downloaded:
builds the built-in suite, warms up the proxy, computes features, trains a selection agent, selects 5%,
fine-tunes the target on it and on the baselines' picks (random, NICE, GradAlign, full data), and prints
the table with the plot's path.
"""

from __future__ import annotations

import argparse
import time

from selectgym.commands.options import add_config_flag

#: GradAlign in ``align`` mode: the demo's random-weight proxy solves no validation problem, so ``sim``/``dot``
#: have no validation direction to align with (they say so in one line when asked for).
DEMO_METHODS = ["policy", "less", "nice", "gradalign:align", "random", "full"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flag(parser)
    parser.add_argument("--out", default="selectgym-demo", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="suite seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="selection/training seeds (several give mean +- std and paired tests)")
    parser.add_argument("--size", type=int, default=300, help="examples in the built-in pool")
    parser.add_argument("--budget", type=float, default=0.05, help="share of the pool to select")
    parser.add_argument("--methods", nargs="+", default=DEMO_METHODS, help="methods to compare")
    parser.add_argument("--agent-timesteps", type=int, default=10_000, help="env steps to train the agent")


def run(args: argparse.Namespace) -> int:
    from selectgym.bench.harness import BenchConfig, run_bench

    cfg = BenchConfig(out=args.out, suite_seed=args.seed, suite_size=args.size, methods=list(args.methods),
                      budgets=[args.budget], seeds=list(args.seeds), agent_timesteps=args.agent_timesteps,
                      proj_dim=2048, validation_size=48)
    start = time.perf_counter()
    result = run_bench(cfg)
    print(result["table"])
    print(f"plot: {result['plots'][0]} (cost: {result['plots'][1]}); every run: {args.out}/runs.json")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0
