"""Does a learned policy carry over to pools of task families it never saw, and does it beat LESS?

Run: ``.venv/bin/python -m benchmarks.quality.transfer`` from the checkout root (about 30 minutes on 2 CPU cores;
pools and features are cached under ``--work``, so a rerun or a killed run reuses them).

1. **Pools**: the training pools of ``configs/policy_transfer.yaml`` (drawn from half of the 16 families
   ``mini`` knows, with random families, target shares, defect rates and sizes: domain randomisation) and
   four evaluation pools drawn once per seed (``benchmarks.harness.EVAL_POOLS``): ``suite`` (training families) and
   three held-out pools whose families all lie in the other half. Features from ``mini`` (LoRA gradients, loss,
   length, embedding, DPO gap) aligned to one half of each target set (``val_a``).
2. **Grounded reward study**: on every training pool, ``--updates`` random batches of 8 really train the
   proxy's LoRA (3 AdamW steps) and the drop of its loss on the *other* half of the target set (``val_b``)
   is recorded. Reported: how that drop ranks with each batch-mean feature, a ridge model of the drop from
   those features (the ``learned`` reward; rank correlation on pools it was not fitted on), and, for
   measuring only, with the batch's share of useful examples.
3. **Policies**: ``policy`` is the default policy, trained exactly as ``selectgym train-agent --config
   configs/policy_transfer.yaml`` trains it: PPO on ``selectgym/ExampleSelect-v0`` over all training pools,
   the permutation-invariant candidate scorer observing each candidate's alignment (raw and z-scored within
   the pool; the target direction is the mean of the unit ``val_a`` gradients, as in LESS) and its redundancy
   with what is taken, the first-order drop of the ``val_b`` loss as reward.
   Its levers are measured by variants: ``policy_mean_alignment`` (the plain mean target gradient as direction),
   ``policy_with_loss`` and ``policy_with_loss_length`` (also observe
   the proxy's loss, and the length), ``policy_all_features`` (also the DPO gap),
   ``policy_one_pool`` (trained on one pool: no domain randomisation), ``policy_learned`` (the ``learned``
   reward). Baselines: FeatureSelect (PPO) and ClusterSelect (MaskablePPO) trained on one training pool.
   Every agent is trained once per seed (agent seed = seed), so the spread includes training noise.
4. **Scoring**: every method picks ``--budget`` of every evaluation pool; the useful share (clean and
   on-target, ground truth read here for measuring only) is averaged over seeds.

Results: ``--out``.json (shape in the transfer issue) and ``--out``.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.envelope import (
    command_line,
    environment,
    load_average,
    load_note,
    paired_test,
    read_json,
    section_of,
    write_results,
)
from benchmarks.harness import EVAL_POOLS, HELD_OUT_FAMILIES, TRAIN_FAMILIES, pick, train_policies, training_pools
from selectgym.agents.pools import build_pool, build_pools
from selectgym.data import load_pool
from selectgym.envs.rewards import ProxyReward
from selectgym.envs.summaries import example_matrix, zscore
from selectgym.proxies.models import weights_digest
from selectgym.utils import write_json

log = logging.getLogger("transfer")
REWARD_COLUMNS = ("alignment", "alignment_z", "dpo_gap", "loss", "length")
POLICIES = ("policy", "policy_mean_alignment", "policy_with_loss", "policy_with_loss_length", "policy_all_features",
            "policy_one_pool", "policy_learned")
METHODS = (*POLICIES, "less", "less_sgd", "less_minus_loss", "less_sgd_minus_loss", "dpo_gap", "random",
           "feature_select", "cluster_select")


def useful_flags(folder: Path, ids: list[str], pool=None) -> np.ndarray:
    """Ground truth (clean and on-target) of each row, read for measuring only (``pool``: already loaded)."""
    pool = pool if pool is not None else load_pool(folder / "suite" / "sft.jsonl")
    return np.array([pool[pool.index(i)].meta["useful"] for i in ids], dtype=float)


# -- 2. the grounded reward ------------------------------------------------------------------------------------
def real_updates(folder: Path, tables: tuple, n: int, batch: int, seed: int) -> dict:
    """``n`` real LoRA updates of ``mini`` on random batches: the drop of the ``val_b`` loss, batch features."""
    train, val, _ = tables
    pool = load_pool(folder / "suite" / "sft.jsonl")
    reward = ProxyReward(train, pool=pool, val_pool=load_pool(folder / "suite" / "val_b.jsonl", "verifiable"),
                         model="mini", lr=3e-3, steps=3, val_subsample=32, seed=seed)
    x, _, columns = example_matrix(train, val, ["alignment", "dpo_gap", "loss", "length"])
    x = x[:, [columns.index(c) for c in REWARD_COLUMNS]]
    useful = useful_flags(folder, train.ids, pool)
    rng = np.random.default_rng(seed)
    drops, feats, shares = [], [], []
    started = time.perf_counter()
    for _ in range(n):
        rows = rng.choice(len(train), batch, replace=False)
        reward.reset()
        drops.append(reward.step(rows))
        feats.append(x[rows].mean(axis=0))
        shares.append(useful[rows].mean())
    return {"drop": np.array(drops), "x": np.array(feats), "useful": np.array(shares),
            "seconds_per_update": (time.perf_counter() - started) / n}


def fit_reward(studies: list[dict]) -> dict:
    """Ridge fit of the (per-pool z-scored) drop on the batch-mean features; leave-one-pool-out rank correlation."""
    from sklearn.linear_model import Ridge

    def fit(parts):
        x = np.concatenate([p["x"] for p in parts])
        y = np.concatenate([zscore(p["drop"], None) for p in parts])
        return Ridge(alpha=1.0).fit(x, y)

    held = []
    for i, part in enumerate(studies):
        model = fit(studies[:i] + studies[i + 1:])
        held.append(float(spearmanr(model.predict(part["x"]), part["drop"])[0]))
    model = fit(studies)
    return {
        "updates": int(sum(len(p["drop"]) for p in studies)),
        "seconds_per_update": float(np.mean([p["seconds_per_update"] for p in studies])),
        "spearman_drop_vs_feature": {c: float(np.mean([spearmanr(p["x"][:, j], p["drop"])[0] for p in studies]))
                                     for j, c in enumerate(REWARD_COLUMNS)},
        "spearman_drop_vs_useful_share": float(np.mean([spearmanr(p["useful"], p["drop"])[0] for p in studies])),
        "learned_weights": {c: float(w) for c, w in zip(REWARD_COLUMNS, model.coef_, strict=True)},
        "learned_spearman_held_out_pools": float(np.mean(held)),
    }


# -- 3. policies (trained by benchmarks.harness.train_policies; 4. scoring: benchmarks.harness.pick) ----------
def training_seconds(folder: Path, name: str, seeds: list[int]) -> float | None:
    """Mean training seconds of a policy over the seeds this benchmark trained it for; None when every one was
    trained elsewhere (``selectgym train-agent`` writes the same policy without a timing file)."""
    timed = [float(p.read_text()) for s in seeds if (p := folder / f"{name}-s{s}.seconds").exists()]
    return float(np.mean(timed)) if timed else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/transfer", help="pools, features and policies (cached)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--updates", type=int, default=60, help="real proxy updates per training pool")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/transfer")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    before, started = load_average(), time.perf_counter()
    work = Path(args.work)
    print("pools", flush=True)
    pools_cfg = training_pools()
    triples = build_pools(pools_cfg, work / "train")
    evals = {}
    for seed in args.seeds:
        for spec in EVAL_POOLS:
            folder = work / "eval" / f"{spec.name}-s{seed}"
            evals[spec.name, seed] = (folder, build_pool(spec.suite_config(seed), folder, pools_cfg))

    print("grounded reward study", flush=True)
    study_path = work / "reward_study.json"
    if study_path.exists():
        study = json.loads(study_path.read_text())
    else:
        study = fit_reward([real_updates(work / "train" / f"pool{i}", t, args.updates, 8, seed=i)
                            for i, t in enumerate(triples)])
        write_json(study_path, study)

    print("policies", flush=True)
    paths = {seed: train_policies(triples, study["learned_weights"], args.budget, seed, work / "policies")
             for seed in args.seeds}
    useful: dict[str, dict[str, list[float]]] = {}
    for (name, seed), (folder, (train, val, _)) in evals.items():
        flags = useful_flags(folder, train.ids)
        for method in METHODS:
            rows = pick(method, train, val, args.budget, seed, paths[seed])
            useful.setdefault(name, {}).setdefault(method, []).append(float(flags[rows].mean()))
        print(name, seed, {m: round(v[-1], 2) for m, v in useful[name].items()}, flush=True)

    report = {"pools": {}, "command": command_line(__file__, argv), "environment": environment(args.threads),
              "proxy_digest": weights_digest("mini"),
              "budget": args.budget, "train_families": sorted(TRAIN_FAMILIES),
              "held_out_families": sorted(HELD_OUT_FAMILIES),
              "training_pools": [{"targets": list(s.target_tasks), "off_target": list(s.off_target_tasks),
                                  "size": s.size, "target_share": s.target_share, "defect_rate": s.defect_rate}
                                 for s in pools_cfg.suites()],
              "reward_study": study,
              "policy_seconds": {n: training_seconds(work / "policies", n, args.seeds) for n in POLICIES}}
    for spec in EVAL_POOLS:
        report["pools"][spec.name] = {
            "held_out": spec.held_out, "families": spec.families, "target": list(spec.target),
            "defect_rate": spec.defect_rate, "size": spec.size,
            "methods": {m: {"useful_mean": float(np.mean(v)), "useful_std": float(np.std(v, ddof=1)),
                            "seeds": len(v), "per_seed": v} for m, v in useful[spec.name].items()}}
    held = [s.name for s in EVAL_POOLS if s.held_out]
    pol = np.concatenate([useful[p]["policy"] for p in held])
    report["held_out_summary"] = {
        m: {"held_out_mean": float(np.concatenate([useful[p][m] for p in held]).mean()),
            "p_policy_vs": None if m == "policy" else paired_test(pol, np.concatenate([useful[p][m]
                                                                                       for p in held]))[1]}
        for m in METHODS}
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["load_note"] = load_note(before, load_average())
    out = Path(args.out)
    previous = read_json(out)
    # pools scored by other benchmarks (benchmarks.quality.other_kind's humaneval_mix) stay
    report["pools"] = {**{k: v for k, v in previous.get("pools", {}).items() if "command" in v}, **report["pools"]}
    # the downstream section that benchmarks.accuracy.downstream writes is kept
    text = markdown({**previous, **report}) + section_of(out.with_suffix(".md"), "## Downstream")
    write_results(out, report, text, merge=True)
    print(text)
    return 0


def markdown(report: dict) -> str:
    """The transfer tables."""
    lines = ["# Transfer: does a learned policy carry over to families it never saw?", "",
             f"Command: `{report['command']}` ({report['seconds']:.0f} s with cached pools). "
             f"{report['environment']}. {report['load_note']}", "",
             f"Useful share (clean and on-target; ground truth read for measuring only) of a "
             f"{report['budget']:.0%} selection, mean +- std over seeds (each seed draws the pool again). "
             f"Proxy `mini` (weights {report.get('proxy_digest') or 'not recorded'}). "
             f"Training families: {', '.join(report['train_families'])}. Held-out pools draw only "
             f"from {', '.join(report['held_out_families'])}.", "",
             "| pool | held out | " + " | ".join(METHODS) + " |", "|---|---|" + "---:|" * len(METHODS)]
    for name, pool in report["pools"].items():
        if "command" in pool:  # scored by another benchmark, with its own results file
            continue
        cells = [f"{pool['methods'][m]['useful_mean']:.2f} +- {pool['methods'][m]['useful_std']:.2f}"
                 for m in METHODS]
        lines.append(f"| {name} ({', '.join(pool['target'])}) | {'yes' if pool['held_out'] else 'no'} | "
                     + " | ".join(cells) + " |")
    s = report["held_out_summary"]
    lines += ["", "Held-out pools together (3 pools x seeds), paired t-test of `policy` against each method:", "",
              "| method | held-out mean | p (policy vs method) |", "|---|---:|---:|"]
    for m in METHODS:
        p = s[m]["p_policy_vs"]
        lines.append(f"| {m} | {s[m]['held_out_mean']:.3f} | {'' if p is None else f'{p:.2g}'} |")
    st = report["reward_study"]
    lines += ["", "## The grounded reward", "",
              f"{st['updates']} real updates of `mini`'s LoRA (3 AdamW steps, lr 3e-3, batches of 8) on the training "
              f"pools, {st['seconds_per_update']:.2f} s each; the drop of the loss on `val_b`, the target half the "
              "features never saw. Mean Spearman correlation within a pool:", "",
              "| with | Spearman |", "|---|---:|"]
    lines += [f"| batch-mean `{c}` | {v:+.2f} |" for c, v in st["spearman_drop_vs_feature"].items()]
    lines += [f"| batch share of useful examples (ground truth) | {st['spearman_drop_vs_useful_share']:+.2f} |",
              f"| `learned` ridge model, pools it was not fitted on | {st['learned_spearman_held_out_pools']:+.2f} |",
              "", "Learned weights: " + ", ".join(f"`{k}` {v:+.3f}" for k, v in st["learned_weights"].items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
