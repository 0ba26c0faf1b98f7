"""Train an RL data-selection agent on computed features and save the policy (zip + JSON sidecar).

Example: `selectgym train-agent --config configs/agent_ppo.yaml --features feats/ --eval-features feats_eval/
--out policy.zip`. Every AgentConfig field is a flag (and a YAML key); reward_kwargs and algo_kwargs take YAML.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selectgym.commands.options import add_config_flag, add_dataclass_arguments, dataclass_from_args
from selectgym.errors import SelectgymError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flag(parser)
    parser.add_argument("--features", default=None, help="feature folder of the training pool (`selectgym features`)")
    parser.add_argument("--eval-features", default=None, help="feature folder of a held-out pool to evaluate on")
    parser.add_argument("--out", default="policy.zip", help="where to save the policy (a sidecar .json goes beside)")
    parser.add_argument("--pool", default=None, help="training pool file (only the proxy reward needs the texts)")
    parser.add_argument("--val", default=None, help="validation file (only the proxy reward needs the texts)")
    from selectgym.agents.config import AgentConfig

    parser.set_defaults(_config_fields=add_dataclass_arguments(parser, AgentConfig))


def _load(folder: str | None, flag: str):
    if not folder:
        raise SelectgymError(f"{flag} DIR is required: a folder written by `selectgym features`")
    if not Path(folder).exists():
        raise SelectgymError(f"{flag} {folder}: no such folder; compute it with `selectgym features`")
    from selectgym.proxies.pipeline import load_features

    return load_features(folder)


def run(args: argparse.Namespace) -> int:
    from selectgym.agents.config import AgentConfig
    from selectgym.agents.train import train_agent

    cfg = dataclass_from_args(AgentConfig, args, args._config_fields)
    train, val, store = _load(args.features, "--features")
    eval_train = eval_val = None
    if args.eval_features:
        eval_train, eval_val, _ = _load(args.eval_features, "--eval-features")
    context = None
    if cfg.reward == "proxy":
        if not (args.pool and args.val):
            raise SelectgymError("the proxy reward trains on the texts: give --pool FILE and --val FILE")
        from selectgym.data.io import load_pool

        context = {"pool": load_pool(args.pool), "val_pool": load_pool(args.val)}
    if cfg.eval_reward == "proxy" and eval_train is not None:
        raise SelectgymError("eval_reward 'proxy' is not available from the command line; use 'linear'")
    train_agent(cfg, train, val, out=args.out, eval_table=eval_train, eval_val_table=eval_val,
                reward_context=context, feature_config=store.meta.get("config"))
    print(f"trained {cfg.algo} on {cfg.env_id} for {cfg.timesteps} steps ({len(train)} examples); "
          f"saved {args.out} and {Path(args.out).with_suffix('.json').name}")
    return 0
