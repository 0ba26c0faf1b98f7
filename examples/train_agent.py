"""Train a data-selection policy on the built-in suite, top to bottom.

    .venv/bin/python examples/train_agent.py --out runs/agent --pool-size 400 --timesteps 20000

1. write the built-in suite (a pool with known clean, on-target examples and a validation set);
2. compute the tiny proxy's features (gradients, losses, lengths, embeddings);
3. train PPO on selectgym/FeatureSelect-v0 with the linear reward; save policy.zip (sidecar inside).
"""

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from selectgym.agents import AgentConfig, train_agent
from selectgym.data.suite import SuiteConfig, make_suite
from selectgym.proxies.pipeline import FeatureConfig, compute_features, load_features


@dataclass
class Args:
    out: str = "runs/agent"
    """folder for the suite, its features, the logs and the policy"""
    seed: int = 0
    """seed of the suite, the features and the agent"""
    pool_size: int = 400
    """examples in the built-in pool"""
    proj_dim: int = 256
    """projection dimension of the gradients"""
    timesteps: int = 20_000
    """env steps to train the agent for"""
    budget: float = 0.1
    """share of the pool one episode selects"""
    n_clusters: int = 8
    """K-means clusters (actions) per pool"""


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

    features = FeatureConfig(model="tiny", features=["grad", "loss", "length", "embedding"], proj_dim=args.proj_dim,
                             seed=args.seed)
    compute_features(suite / "sft.jsonl", suite / "validation.jsonl", features, out / "features")
    train, val, store = load_features(out / "features")

    cfg = AgentConfig(algo="ppo", timesteps=args.timesteps, budget=args.budget, n_clusters=args.n_clusters,
                      batch_size=4, seed=args.seed, log_dir=str(out / "logs"), eval_freq=0)
    train_agent(cfg, train, val, out=out / "policy.zip", feature_config=store.meta.get("config"))
    print(f"trained on {len(train)} examples; policy at {out / 'policy.zip'}; TensorBoard logs in {out / 'logs'}")
