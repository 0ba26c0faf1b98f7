"""A policy trained on the grounded ``trained`` reward, against the same design on the ``linear`` reward, downstream.

The reward-fidelity benchmark found the terminal ``trained`` reward scored by loss (fine-tune ``mini`` on the
episode's selection, score the reference answers' loss on target problems the observations never saw) the most
faithful with ``mini`` on both of its pools; on the held-out pool the top picks of LESS and of the default policy
score below random. That choice of score was made on these same pools'
scored accuracy (nothing was fitted to it). This trains the default policy's design (``configs/policy_transfer.yaml``:
ExampleSelect, PPO, the training pools drawn from its families less the two the held-out pool aims at) once on that
reward and once on ``linear``, with the same seed and steps, and scores both, the shipped default policy (alone, and
with its budget shared between the target's subtasks), LESS, LESS with subtasks balanced and random (a draw per
seed) with ``mini`` as the target on the reward-fidelity pools (5 fine-tuning seeds each, scored on the target third
no feature and no reward aimed at).

Run: ``.venv/bin/python -m benchmarks.accuracy.trained_policy`` from the checkout root, after
``benchmarks.accuracy.reward_fidelity`` (its pools and features). Writes
``benchmarks/results/trained_policy.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.accuracy import reward_fidelity as fidelity
from benchmarks.envelope import RESULTS, command_line, environment, load_average, load_note, paired_p, write_results
from benchmarks.harness import FIDELITY_FAMILIES, pick, policy_config
from selectgym.agents import AgentConfig
from selectgym.agents.policy_file import policy_path
from selectgym.agents.pools import TrainingPools
from selectgym.agents.train import train_over_pools
from selectgym.data.io import load_pool
from selectgym.proxies.models import weights_digest
from selectgym.selectors.coverage import subtask_labels
from selectgym.utils import stable_hash, write_json

WORK = fidelity.ROOT / "runs" / "trained-policy"
TRAINED = {"model": "mini", "score": "loss", "seed": 1000, **fidelity.MINI_FT}
#: the policies trained here: (name, reward, its settings, the features observed when not the default design's)
POLICIES = (("policy_trained", "trained", TRAINED, None),
            ("policy_linear", "linear", policy_config()["reward_kwargs"], None),
            # the loss too: the fixed rule LESS-sgd minus the z-scored loss is the best one with SmolLM2 as the
            # target (reward_fidelity.md), and a grounded reward can pay for what the loss tells, where `linear`,
            # a sum of alignments, cannot
            ("policy_trained_loss_obs", "trained", TRAINED, ["alignment", "loss"]))
METHODS = ("policy_trained", "policy_linear", "policy_trained_loss_obs", "default", "default_balanced", "less",
           "less_balanced", "random")


def training_pools() -> TrainingPools:
    """The default policy's training pools without the families the held-out reward-fidelity pool aims at, so
    that pool is one of families these policies never saw."""
    settings = policy_config()["training_pools"]
    families = {f: v for f, v in settings["families"].items() if f not in FIDELITY_FAMILIES}
    return TrainingPools(**{**settings, "families": families})


def train(reward: str, kwargs: dict, seed: int, timesteps: int, observe: list[str] | None = None) -> tuple[Path, float]:
    """The default policy's design trained over its training pools on ``reward`` (each pool's texts and the
    reward half of its target given to a reward that reads texts); ``observe`` replaces the features it observes."""
    extra = [observe] if observe else []  # the default design's policies keep their keys
    key = stable_hash([reward, kwargs, timesteps, dataclasses.asdict(training_pools()), *extra], 8)
    path = WORK / f"policy_{reward}-s{seed}-{key}.zip"
    seconds = path.with_suffix(".seconds")
    if path.exists():
        return path, float(seconds.read_text())
    settings = {k: v for k, v in policy_config().items() if k != "training_pools"}
    cfg = AgentConfig(**{**settings, "reward": reward, "reward_kwargs": kwargs, "timesteps": timesteps,
                         "seed": seed, "progress_bar": False, "eval_freq": 0,
                         **({"observe": observe} if observe else {})})
    started = time.perf_counter()
    train_over_pools(cfg, training_pools(), out=path)
    elapsed = time.perf_counter() - started
    seconds.write_text(f"{elapsed:.1f}")
    return path, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=8192, help="env steps of each policy's training")
    parser.add_argument("--seed", type=int, default=0, help="the agents' seed")
    parser.add_argument("--ft-seeds", type=int, default=5, help="fine-tuning seeds per selection")
    args = parser.parse_args(argv)
    before, started = load_average(), time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    paths, costs = {}, {}
    for name, reward, kwargs, observe in POLICIES:
        paths[name], costs[name] = train(reward, kwargs, args.seed, args.timesteps, observe)
    paths["default"] = policy_path("default")
    saved = WORK / "runs.json"
    runs = json.loads(saved.read_text()) if saved.exists() else {}
    for pool in fidelity.POOLS:
        folder = fidelity.OUT / pool
        train_t, val_t = fidelity.tables(folder)
        subtasks = subtask_labels(load_pool(folder / "observe.jsonl"))
        for method in METHODS:
            for seed in range(args.ft_seeds):
                key = f"{pool}/{method}/{seed}"
                if key not in runs:  # random draws with each seed; the rest pick the same ids every seed
                    rows = pick(method, train_t, val_t, fidelity.BUDGET, seed if method == "random" else 0, paths,
                                subtasks=subtasks)
                    ids = [train_t.ids[r] for r in rows]
                    runs[key] = {**fidelity.accuracy(folder, ids, "mini", seed), "ids": ids}
                    write_json(saved, runs)
            print(pool, method, np.mean([runs[f"{pool}/{method}/{s}"]["accuracy"] for s in range(args.ft_seeds)]),
                  flush=True)
    table = {}
    for pool in fidelity.POOLS:
        acc = {m: [runs[f"{pool}/{m}/{s}"]["accuracy"] for s in range(args.ft_seeds)] for m in METHODS}
        table[pool] = {m: {"mean": round(float(np.mean(a)), 4), "std": round(float(np.std(a, ddof=1)), 4),
                           "p_vs_policy_trained": None if m == "policy_trained" else paired_p(acc["policy_trained"], a)}
                       for m, a in acc.items()}
    report = {"command": command_line(__file__, argv), "environment": environment(),
              "proxy_digest": weights_digest("mini"), "timesteps": args.timesteps, "seed": args.seed,
              "training_seconds": costs, "trained_reward": TRAINED, "pools": table, "runs": runs,
              "load_note": load_note(before, load_average()),
              "seconds_this_call": round(time.perf_counter() - started)}
    lines = ["# A policy trained on the grounded `trained` reward, downstream", "",
             f"Command: `{report['command']}`. {report['environment']}, no GPU. {report['load_note']}", "",
             f"The default policy's design trained for {args.timesteps} env steps (seed {args.seed}) on the `trained` "
             "reward (`mini` fine-tuned on the episode's picks, the reference answers' loss on the reward half of "
             f"each training pool's target) in {costs['policy_trained']:.0f} s, and on `linear` in "
             f"{costs['policy_linear']:.0f} s; `policy_trained_loss_obs` is the same design observing the loss "
             f"beside the alignment, trained on the `trained` reward in {costs['policy_trained_loss_obs']:.0f} s. "
             f"Target `mini`, 5% of each reward-fidelity pool, {args.ft_seeds} "
             "fine-tuning seeds, scored on the target third no feature or reward aimed at; p: paired t-test against "
             "`policy_trained`.", "",
             "| method | " + " | ".join(fidelity.POOLS) + " |", "|---|" + "---|" * len(fidelity.POOLS)]
    for m in METHODS:
        cells = []
        for pool in fidelity.POOLS:
            r = table[pool][m]
            p = "" if r["p_vs_policy_trained"] is None else f" (p = {r['p_vs_policy_trained']:.2g})"
            cells.append(f"{r['mean']:.3f} +- {r['std']:.3f}{p}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    write_results(RESULTS / "trained_policy", report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
