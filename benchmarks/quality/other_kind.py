"""Does the default policy hold on a pool of another kind? HumanEval code next to off-target reasoning problems.

Run after ``benchmarks.quality.transfer`` or ``benchmarks.accuracy.downstream`` (it applies the per-seed default
policies they train): ``.venv/bin/python -m benchmarks.quality.other_kind`` from the checkout root (a few minutes on
2 CPU cores; pools and features are cached under ``--work``).

For every seed a pool is drawn with ``selectgym.data.humaneval.humaneval_mix``: ``--validation-size``
HumanEval problems are the target set, the other 124 are on-target examples (``--defect-rate`` of them with
another problem's solution, half a solution or a shuffled one) beside ``--off-target`` clean reasoning-gym
examples. Nothing like it was in the policy's training pools: code, not reasoning-gym, and one target family.
Features come from ``mini`` with the training pools' settings. Each method picks ``--budget``; the useful
share (clean HumanEval examples; ground truth read for measuring only) is compared over seeds with paired
t-tests. Results: ``--out``.json/.md, and the pool ``humaneval_mix`` in ``benchmarks/results/transfer.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.envelope import command_line, load_average, load_note, paired_p, read_json, write_results
from benchmarks.harness import pick, training_pools
from selectgym.data import load_pool
from selectgym.data.humaneval import humaneval_mix
from selectgym.data.suite import DEFAULT_OFF_TARGET
from selectgym.proxies.models import weights_digest
from selectgym.proxies.pipeline import compute_features, load_features
from selectgym.utils import write_jsonl

METHODS = ("policy", "less", "less_sgd", "less_minus_loss", "random")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--validation-size", type=int, default=40)
    parser.add_argument("--defect-rate", type=float, default=0.3)
    parser.add_argument("--off-target", type=int, default=200)
    parser.add_argument("--policies", default="runs/transfer/policies")
    parser.add_argument("--work", default="runs/other_kind")
    parser.add_argument("--out", default="benchmarks/results/other_kind")
    parser.add_argument("--transfer", default="benchmarks/results/transfer.json")
    args = parser.parse_args(argv)
    before, started = load_average(), time.perf_counter()
    feature_config = training_pools().feature_config("sft")
    shares: dict[str, list[float]] = {m: [] for m in METHODS}
    for seed in args.seeds:
        folder = Path(args.work) / f"s{seed}"
        if not (folder / "done.json").exists():
            files = humaneval_mix(seed, args.validation_size, args.defect_rate, args.off_target)
            write_jsonl(folder / "sft.jsonl", files["sft"])
            write_jsonl(folder / "validation.jsonl", files["validation"])
            compute_features(folder / "sft.jsonl", folder / "validation.jsonl", feature_config, folder / "features",
                             progress=False)
            (folder / "done.json").write_text("{}")
        train, val, _ = load_features(folder / "features")
        pool = load_pool(folder / "sft.jsonl")
        useful = np.array([pool[pool.index(i)].meta["useful"] for i in train.ids], dtype=float)
        paths = {"policy": Path(args.policies) / f"policy-s{seed}.zip"}
        for method in METHODS:
            shares[method].append(float(useful[pick(method, train, val, args.budget, seed, paths)].mean()))
        print(f"seed {seed}: " + ", ".join(f"{m} {v[-1]:.2f}" for m, v in shares.items()), flush=True)

    methods = {m: {"useful_mean": float(np.mean(v)), "useful_std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                   "seeds": len(v), "p_policy_vs": None if m == "policy" else paired_p(shares["policy"], v)}
               for m, v in shares.items()}
    labels = [r.meta for r in load_pool(Path(args.work) / f"s{args.seeds[0]}" / "sft.jsonl")]
    pool_share = float(np.mean([m["useful"] for m in labels]))
    n_clean = sum(m["useful"] for m in labels)
    n_defective = sum(m["on_target"] and not m["clean"] for m in labels)
    command = command_line(__file__, argv)
    report = {"command": command, "seconds": round(time.perf_counter() - started, 1), "budget": args.budget,
              "pool_useful_share": pool_share, "methods": methods, "proxy_digest": weights_digest("mini"),
              "load_note": load_note(before, load_average())}
    lines = [
        "# A pool of another kind: HumanEval code beside off-target reasoning problems", "",
        f"Command: `{command}` ({report['seconds']:.0f} s; the pools' features are cached in --work after the "
        f"first run). {report['load_note']}", "",
        f"Pool: {n_clean} clean and {n_defective} defective HumanEval "
        f"solutions (another problem's, half of one, shuffled) and {args.off_target} clean off-target reasoning-gym "
        f"examples ({pool_share:.0%} useful); target: {args.validation_size} other HumanEval problems. Features from "
        f"`mini` (weights {report['proxy_digest']}). Useful share of a {args.budget:.0%} selection, mean +- std "
        f"over {len(args.seeds)} seeds (each "
        "draws the pool again; the policy is the default one trained with that seed); paired t-test of the policy "
        "against each method.", "",
        "| method | useful share | p (policy vs) |", "|---|---:|---:|",
    ]
    for m, d in methods.items():
        cell = "" if d["p_policy_vs"] is None else f"{d['p_policy_vs']:.2g}"
        lines.append(f"| {m} | {d['useful_mean']:.3f} +- {d['useful_std']:.3f} | {cell} |")
    write_results(args.out, report, "\n".join(lines) + "\n")
    transfer = Path(args.transfer)
    if transfer.exists():
        data = read_json(transfer)
        data.setdefault("pools", {})["humaneval_mix"] = {
            "held_out": True, "kind": "code (HumanEval) beside off-target reasoning-gym problems",
            "families": ["humaneval", *DEFAULT_OFF_TARGET],
            "methods": {m: {k: d[k] for k in ("useful_mean", "useful_std", "seeds")} for m, d in methods.items()},
            "command": command}
        write_results(transfer.with_suffix(""), data)
    print("\n".join(lines[-len(methods) - 2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
