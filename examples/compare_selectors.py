"""Compare a trained selection policy with NICE, GradAlign and random selection on one built-in pool.

    .venv/bin/python examples/compare_selectors.py --policy runs/agent/policy.zip --pool-size 300

Each selector picks the same budget from the same pool (GradAlign reads the verifiable twin's GRPO
features); the suite's labels say which picks are clean and on-target (what a good selector should prefer).
"""

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from selectgym.agents.policy_file import read_sidecar
from selectgym.data.io import load_pool
from selectgym.data.suite import SuiteConfig, make_suite
from selectgym.proxies.pipeline import FeatureConfig, compute_features, load_features
from selectgym.selectors import get_selector


@dataclass
class Args:
    policy: str = "runs/agent/policy.zip"
    """a policy saved by examples/train_agent.py or `selectgym train-agent`"""
    out: str = "runs/compare"
    """folder for the pool and its features"""
    seed: int = 3
    """seed of the pool and of every selector"""
    pool_size: int = 300
    """examples in the pool"""
    budget: float = 0.1
    """share of the pool each selector picks"""


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
    # the SFT pool for the policy and NICE; the verifiable twin (same ids) for GradAlign's GRPO gradients
    # features made the way the policy's own were (same proxy seed and projection), or it refuses them
    made_like = read_sidecar(args.policy)["feature_config"]
    common = {"model": "tiny", "proj_dim": made_like["proj_dim"], "seed": made_like["seed"], "rollouts": 2,
              "max_new_tokens": 8}
    sft = FeatureConfig(features=["grad", "grad_adam", "loss", "length", "embedding", "nice"], **common)
    compute_features(suite / "sft.jsonl", suite / "validation.jsonl", sft, out / "features-sft")
    compute_features(suite / "verifiable.jsonl", suite / "validation.jsonl", FeatureConfig(features=["grpo"], **common),
                     out / "features-grpo")
    sft_tables, grpo_tables = load_features(out / "features-sft")[:2], load_features(out / "features-grpo")[:2]
    useful = {ex.id: bool(ex.meta.get("useful")) for ex in load_pool(suite / "sft.jsonl")}

    selectors = {
        "policy": get_selector("policy", policy_path=args.policy),
        "nice": get_selector("nice"),
        # align mode needs no validation rewards (a random tiny proxy rarely solves a target problem)
        "gradalign": get_selector("gradalign", mode="align"),
        "random": get_selector("random"),
    }
    print(f"{'selector':<10} {'picked':>6} {'clean+on-target':>16}   (pool: {sum(useful.values()) / len(useful):.0%})")
    for name, selector in selectors.items():
        train, val = grpo_tables if name == "gradalign" else sft_tables
        selection = selector.select(train, val, args.budget, args.seed)
        share = sum(useful[i] for i in selection.ids) / len(selection.ids)
        print(f"{name:<10} {len(selection.ids):>6} {share:>16.0%}")
