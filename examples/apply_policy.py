"""Apply a saved selection policy to a new pool: another seed, another size.

    .venv/bin/python examples/apply_policy.py --policy runs/agent/policy.zip --seed 7 --pool-size 300

The features of the new pool are computed with the feature config recorded beside the policy; the
policy then picks batches cluster by cluster until the budget is spent.
"""

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from selectgym.agents import apply_policy
from selectgym.data.io import load_pool
from selectgym.data.suite import SuiteConfig, make_suite


@dataclass
class Args:
    policy: str = "runs/agent/policy.zip"
    """a policy saved by examples/train_agent.py or `selectgym train-agent`"""
    out: str = "runs/apply"
    """folder for the new pool and its features"""
    seed: int = 7
    """seed of the new pool (differs from the training pool's)"""
    pool_size: int = 300
    """examples in the new pool"""
    budget: float = 0.1
    """share of the new pool to select"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Args):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    args = parse_args()
    out = Path(args.out)

    suite = out / "suite"
    make_suite(suite, SuiteConfig(seed=args.seed, size=args.pool_size, validation_size=16))

    selection = apply_policy(args.policy, suite / "sft.jsonl", budget=args.budget, seed=args.seed,
                             val_path=suite / "validation.jsonl", features_out=out / "features")

    useful = {ex.id: bool(ex.meta.get("useful")) for ex in load_pool(suite / "sft.jsonl")}
    picked = sum(useful[i] for i in selection.ids) / len(selection.ids)
    print(f"selected {len(selection.ids)} of {len(useful)} examples; clean and on-target: {picked:.0%} "
          f"(pool: {sum(useful.values()) / len(useful):.0%}); clusters in order: {selection.info['clusters']}")
