"""Does a learned policy carry over to pools of task families it never saw, and does it beat LESS?

Run: ``.venv/bin/python benchmarks/transfer.py`` (about 30 minutes on 2 CPU cores; pools and features are
cached under ``--work``, so a rerun or a killed run reuses them).

1. **Pools**: the training pools of ``configs/policy_transfer.yaml`` (drawn from half of the 16 families
   ``mini`` knows, with random families, target shares, defect rates and sizes: domain randomisation) and
   four evaluation pools drawn once per seed (``transfer_pools.py``): ``suite`` (training families) and three
   held-out pools whose families all lie in the other half. Features from ``mini`` (LoRA gradients, loss,
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
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine_load import load_average, load_note
from scipy.stats import spearmanr, ttest_rel
from transfer_pools import EVAL_POOLS, HELD_OUT_FAMILIES, TRAIN_FAMILIES, policy_config, training_pools

from selectgym.agents.apply import apply_policy
from selectgym.agents.config import AgentConfig
from selectgym.agents.pools import build_pool, build_pools
from selectgym.agents.train import train_agent
from selectgym.budget import resolve_budget
from selectgym.data import load_pool
from selectgym.envs.rewards import ProxyReward
from selectgym.envs.summaries import example_matrix, zscore
from selectgym.proxies.models import weights_digest
from selectgym.selectors import get_selector
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


# -- 3. policies -----------------------------------------------------------------------------------------------
def training_seconds(folder: Path, name: str, seeds: list[int]) -> float | None:
    """Mean training seconds of a policy over the seeds this benchmark trained it for; None when every one was
    trained elsewhere (``selectgym train-agent`` writes the same policy without a timing file)."""
    timed = [float(p.read_text()) for s in seeds if (p := folder / f"{name}-s{s}.seconds").exists()]
    return float(np.mean(timed)) if timed else None


def train_policies(triples: list[tuple], weights: dict | None, budget: float, seed: int, out: Path,
                   only: tuple[str, ...] | None = None) -> dict[str, Path]:
    """The default policy as the documented command trains it (agent seed ``seed``), its lever variants, and the
    cluster baselines (``only``: just these)."""
    settings = {k: v for k, v in policy_config().items() if k != "training_pools"}
    base = {**settings, "budget": budget, "progress_bar": False, "eval_freq": 0, "seed": seed}
    largest = max(range(len(triples)), key=lambda i: len(triples[i][0]))
    variants = {
        "policy": (base, triples),
        "policy_mean_alignment": ({**base, "alignment_target": "mean"}, triples),
        "policy_with_loss": ({**base, "observe": ["alignment", "loss"]}, triples),
        "policy_with_loss_length": ({**base, "observe": ["alignment", "loss", "length"]}, triples),
        "policy_all_features": ({**base, "observe": None}, triples),
        "policy_one_pool": (base, [triples[largest]]),
        "policy_learned": ({**base, "reward": "learned", "reward_kwargs": {"weights": weights}}, triples),
    }
    paths = {}
    for name, (kwargs, pools) in variants.items():
        if only is not None and name not in only:
            continue
        path = out / f"{name}-s{seed}.zip"
        if not path.exists():
            started = time.perf_counter()
            (train, val, reward_val), rest = pools[0], pools[1:]
            train_agent(AgentConfig(**kwargs), train, val, out=path, pools=rest, reward_val_table=reward_val)
            path.with_suffix(".seconds").write_text(f"{time.perf_counter() - started:.1f}")
        paths[name] = path
    train, val, _ = triples[largest]
    for name, env_id, algo in (("feature_select", "selectgym/FeatureSelect-v0", "ppo"),
                               ("cluster_select", "selectgym/ClusterSelect-v0", "maskable_ppo")):
        if only is not None and name not in only:
            continue
        path = out / f"{name}-s{seed}.zip"
        if not path.exists():
            train_agent(AgentConfig(env_id=env_id, algo=algo, timesteps=10_000, budget=budget, eval_freq=0,
                                    progress_bar=False, seed=seed), train, val, out=path)
        paths[name] = path
    return paths


# -- 4. scoring ------------------------------------------------------------------------------------------------
def pick(method: str, train, val, budget: float, seed: int, paths: dict[str, Path],
         subtasks: list[str] | None = None) -> list[int]:
    """Rows ``method`` selects (policies are applied like ``selectgym select --policy``). A ``_balanced`` method
    shares the budget among the target's subtasks (``subtasks``: one label per row of ``val``)."""
    k = resolve_budget(budget, len(train))
    rng = np.random.default_rng(seed)
    balanced = method.endswith("_balanced")
    method = method.removesuffix("_balanced")
    if balanced and subtasks is None:
        raise ValueError(f"{method}_balanced needs the target's subtask labels")
    index = {i: n for n, i in enumerate(train.ids)}
    if method in paths:
        sel = apply_policy(paths[method], budget=budget, seed=seed, table=train, val_table=val,
                           subtasks=subtasks if balanced else None)
        return [index[i] for i in sel.ids]
    if method == "random":
        return list(rng.choice(len(train), k, replace=False))
    gradient = "sgd" if method.startswith("less_sgd") else "adam"
    if balanced:
        if method not in ("less", "less_sgd"):
            raise ValueError(f"no balanced form of {method}")
        sel = get_selector("less", gradient_type=gradient, subtasks=subtasks, balance=True).select(train, val, k, seed)
        return [index[i] for i in sel.ids]
    if method.startswith("less"):
        score = get_selector("less", gradient_type=gradient).score(train, val, rng)
        if method.endswith("minus_loss"):
            score = zscore(score, None) - zscore(np.asarray(train.get("loss"), dtype=np.float64), None)
    else:
        score = get_selector(method).score(train, val, rng)
    return list(np.argsort(-score, kind="stable")[:k])


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

    report = {"pools": {}, "command": "cd /work/main && .venv/bin/python " + shlex.join(["benchmarks/transfer.py",
                                                                                          *sys.argv[1:]]),
              "environment": f"Python {platform.python_version()}, torch {torch.__version__}",
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
            "p_policy_vs": None if m == "policy" else float(ttest_rel(pol, np.concatenate([useful[p][m]
                                                                                           for p in held])).pvalue)}
        for m in METHODS}
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["load_note"] = load_note(before, load_average())
    out = Path(args.out)
    previous = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    # pools scored by other benchmarks (other_kind.py's humaneval_mix) stay
    report["pools"] = {**{k: v for k, v in previous.get("pools", {}).items() if "command" in v}, **report["pools"]}
    write_json(out.with_suffix(".json"), {**previous, **report})
    write_markdown(out.with_suffix(".md"), {**previous, **report})
    print(out.with_suffix(".md").read_text())
    return 0


def write_markdown(path: Path, report: dict) -> None:
    """The transfer tables; the downstream section that ``downstream.py`` appends is kept."""
    kept = path.read_text().partition("\n## Downstream")[1:] if path.exists() else ("", "")
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
    path.write_text("\n".join(lines) + "\n" + "".join(kept))


if __name__ == "__main__":
    sys.exit(main())
