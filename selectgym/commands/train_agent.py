"""Train an RL data-selection agent on computed features and save the policy (one zip, its settings inside).

Example: `selectgym train-agent --config configs/agent_ppo.yaml --features feats/ --eval-features feats_eval/
--out policy.zip`. Every AgentConfig field is a flag (and a YAML key); reward_kwargs and algo_kwargs take YAML.
With ``training_pools`` (configs/policy_transfer.yaml) the command draws its own pools from the families
listed there, computes their features (cached) and trains one ExampleSelect policy over all of them.
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
    parser.add_argument("--out", default="policy.zip", help="where to save the policy (one .zip)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--pool", default=None, help="training pool file (the proxy and trained rewards train on "
                        "its texts)")
    parser.add_argument("--val", default=None, help="target problems those rewards score (not the ones --features "
                        "aimed at)")
    parser.add_argument("--pools-dir", default=None, help="where drawn training pools and their features go "
                                                          "(default: a cache folder under $SELECTGYM_CACHE/pools)")
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
    from selectgym.outputs import claim_file

    cfg = dataclass_from_args(AgentConfig, args, args._config_fields)
    claim_file(args.out, {"--features": args.features, "--eval-features": args.eval_features, "--pool": args.pool,
                          "--val": args.val, "--config": getattr(args, "config", None)}, args.overwrite)
    if cfg.training_pools is not None:
        return _run_over_pools(cfg, args)
    train, val, store = _load(args.features, "--features")
    eval_train = eval_val = None
    if args.eval_features:
        from selectgym.agents.policy_file import setting_differences

        eval_train, eval_val, _ = _load(args.eval_features, "--eval-features")
        differ = setting_differences(train.meta, eval_train.meta, who="--features")
        differ += [f"{name} {eval_train.schema()[name]} (--features: {shape})" for name, shape in
                   train.schema().items() if name in eval_train.schema() and eval_train.schema()[name] != shape]
        if differ:
            raise SelectgymError(f"--eval-features {args.eval_features} were made with other settings than --features "
                                 f"{args.features}: {'; '.join(differ)}; compute both with the same feature config "
                                 f"and proxy")
    context = None
    from selectgym.envs.rewards import REWARDS

    if REWARDS.resolve(cfg.reward).reads_texts:
        if not (args.pool and args.val):
            raise SelectgymError(f"the {cfg.reward} reward trains on the texts: give --pool FILE and --val FILE")
        from selectgym.data.io import load_pool

        context = {"pool": load_pool(args.pool), "val_pool": load_pool(args.val)}
    if REWARDS.resolve(cfg.eval_reward).reads_texts and eval_train is not None:
        raise SelectgymError(f"eval_reward {cfg.eval_reward!r} is not available from the command line; use 'linear'")
    train_agent(cfg, train, val, out=args.out, eval_table=eval_train, eval_val_table=eval_val,
                reward_context=context, feature_config=store.meta.get("config"))
    print(f"trained {cfg.algo} on {cfg.env_id} for {cfg.timesteps} steps ({len(train)} examples); "
          f"saved {args.out}")
    return 0


def _run_over_pools(cfg, args: argparse.Namespace) -> int:
    """Draw the configured pools, compute their features (cached), train one policy over all of them."""
    import dataclasses

    from selectgym.agents.pools import TrainingPools
    from selectgym.agents.train import train_over_pools

    known = {f.name for f in dataclasses.fields(TrainingPools)}
    unknown = sorted(set(cfg.training_pools) - known)
    if unknown:
        raise SelectgymError(f"training_pools has unknown key(s) {unknown}; it takes {sorted(known)}")
    _, triples, folder = train_over_pools(cfg, TrainingPools(**cfg.training_pools), args.out, args.pools_dir)
    print(f"trained {cfg.algo} on {cfg.env_id} over {len(triples)} pools ({sum(len(t[0]) for t in triples)} "
          f"examples, features in {folder}) for {cfg.timesteps} steps; saved {args.out}")
    return 0
