"""Downstream check of the transfer benchmark's policies: SmolLM2 fine-tuned on what each method picks.

Run after ``benchmarks.quality.transfer`` (it reads the policies there): ``.venv/bin/python -m
benchmarks.accuracy.downstream`` from the checkout root (about an hour on 2 CPU cores; every run is cached in
``--work``, so a killed run resumes).

The pool is the built-in suite (``--size`` examples, ``--validation-size`` target problems), featurised by ``mini``
like the transfer pools (alignment against one half of the target set). For every seed, each method picks
``--budget`` of it: ``policy`` (the default transfer policy trained with that seed; trained here, into
``--policies``, if the transfer benchmark has not), LESS, LESS on SGD gradients, the DPO gap and random (drawn as
in ``benchmarks.accuracy.sensitivity``, so those runs are shared when the settings agree). ``policy_mean_alignment`` is
the previous default policy (alignment aimed at the plain mean target gradient). ``policy_balanced`` and
``less_balanced`` share the budget among the target's subtasks (its task families, in proportion to their share of
the target set; ``selectgym.selectors.coverage``). SmolLM2-135M-Instruct is fine-tuned on each selection with LoRA
SFT (``--steps`` steps, batch ``--batch-size``, lr ``--lr``); ``full`` trains on the whole pool for one epoch.
Verifier accuracy of greedy answers on all target problems (``selectgym.bench.harness.finetune_and_score``).
Results go under ``downstream`` in ``--out``.json and the ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.envelope import command_line, load_average, load_note, paired_p, replace_section, write_results
from benchmarks.harness import pick, selection, train_policies, training_pools
from selectgym.agents.pools import build_pool, build_pools
from selectgym.bench.harness import finetune_and_score
from selectgym.data import load_pool
from selectgym.data.suite import SuiteConfig
from selectgym.finetune.config import FinetuneConfig
from selectgym.selectors.coverage import subtask_labels
from selectgym.utils import write_json

METHODS = ("policy", "policy_balanced", "policy_mean_alignment", "policy_mean_alignment_balanced", "less",
           "less_balanced", "less_sgd", "dpo_gap", "random", "full")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=600)
    parser.add_argument("--validation-size", type=int, default=200)
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--policies", default="runs/transfer/policies",
                        help="where the transfer benchmark saved its policies")
    parser.add_argument("--training-pools", default="runs/transfer/train",
                        help="the transfer benchmark's training pools")
    parser.add_argument("--shared", default="runs/sensitivity/runs.json", help="sensitivity runs to reuse for random")
    parser.add_argument("--work", default="runs/downstream")
    parser.add_argument("--out", default="benchmarks/results/transfer")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before, started = load_average(), time.perf_counter()
    work = Path(args.work)
    suite = SuiteConfig(seed=0, size=args.size, validation_size=args.validation_size)
    table, val_a, _ = build_pool(suite, work / "pool", training_pools())
    pool = load_pool(work / "pool" / "suite" / "sft.jsonl")
    target = load_pool(work / "pool" / "suite" / "validation.jsonl", "verifiable")
    subtasks = subtask_labels(load_pool(work / "pool" / "suite" / "val_a.jsonl", "verifiable"))
    policies = Path(args.policies)
    if any(m.startswith("policy") for m in args.methods):
        missing = [s for s in args.seeds if not (policies / f"policy-s{s}.zip").exists()]
        triples = build_pools(training_pools(), args.training_pools, progress=True) if missing else []
        for seed in missing:
            train_policies(triples, None, args.budget, seed, policies, only=("policy",))
    done_path = work / "runs.json"
    runs = json.loads(done_path.read_text()) if done_path.exists() else {}
    shared = Path(args.shared)
    same = (args.size, args.validation_size, args.steps, args.batch_size, args.lr) == (600, 200, 12, 8, 1e-3)
    if shared.exists() and same:  # the sensitivity benchmark's suite, selection and training: the same runs
        n = round(args.budget * len(pool))
        for key, run in json.loads(shared.read_text()).items():
            if key.startswith("random-") and key not in runs:
                ids = selection(pool, "random", n, int(key.split("-")[1]))
                runs[key] = {**run, "useful_share": float(np.mean([pool[pool.index(i)].meta["useful"] for i in ids])),
                             "n_selected": n, "shared_with": str(shared)}
    for method in args.methods:  # method by method: the first methods' seeds are complete if the run is cut short
        for seed in args.seeds:
            key = f"{method}-{seed}"
            if key in runs:
                continue
            t0 = time.perf_counter()
            if method == "full":
                ids, steps = list(pool.ids), -1
            elif method == "random":
                ids, steps = selection(pool, "random", round(args.budget * len(pool)), seed), args.steps
            else:
                paths = {name: policies / f"{name}-s{seed}.zip" for name in ("policy", "policy_mean_alignment")}
                rows = pick(method, table, val_a, args.budget, seed, paths, subtasks)
                ids, steps = [table.ids[r] for r in rows], args.steps
            cfg = FinetuneConfig(method="sft", model="smollm2", seed=seed, lr=args.lr, max_steps=steps, epochs=1.0,
                                 batch_size=args.batch_size, output_dir=str(work / "ft" / key))
            scored = finetune_and_score(cfg, pool, ids, target, max_new_tokens=16)
            picked = [pool[pool.index(i)].meta for i in ids]  # ground truth, for measuring only
            tasks = {t: sum(m["task"] == t for m in picked) for t in sorted({m["task"] for m in picked})}
            runs[key] = {**scored, "n_selected": len(ids), "tasks": tasks, "seconds": time.perf_counter() - t0}
            write_json(done_path, runs)
            print(f"{key}: accuracy {scored['accuracy']:.3f}, useful {scored['useful_share']:.2f} "
                  f"({runs[key]['seconds']:.0f} s)", flush=True)

    acc = {m: np.array([runs[f"{m}-{s}"]["accuracy"] for s in args.seeds]) for m in args.methods}
    families = sorted(set(subtasks))

    def p(a, b):
        return paired_p(acc[a], acc[b]) if a in acc and b in acc else None

    downstream = {m: {"accuracy_mean": float(v.mean()), "accuracy_std": float(v.std(ddof=1)),
                      "useful_mean": float(np.mean([runs[f"{m}-{s}"]["useful_share"] for s in args.seeds])),
                      "p_vs_random": p(m, "random") if m != "random" else None,
                      "p_vs_full": p(m, "full") if m != "full" else None,
                      "p_policy_vs": p("policy", m) if m != "policy" else None, "seeds": len(args.seeds),
                      "target_picks": {t: float(np.mean([runs[f"{m}-{s}"].get("tasks", {}).get(t, 0)
                                                         for s in args.seeds])) for t in families}}
                  for m, v in acc.items()}
    meta = {"command": command_line(__file__, argv),
            "target": "smollm2", "pool": len(pool), "n_val": len(target), "steps": args.steps, "lr": args.lr,
            "batch_size": args.batch_size, "seconds": round(time.perf_counter() - started, 1),
            "load_note": load_note(before, load_average())}
    out = Path(args.out)
    section = (f"## Downstream\n\nCommand: `{meta['command']}` ({meta['seconds']:.0f} s). {meta['load_note']}\n\n"
             f"SmolLM2-135M-Instruct fine-tuned with LoRA SFT ({args.steps} steps, batch {args.batch_size}, lr "
             f"{args.lr}; `full`: one epoch over all {len(pool)} examples) on each method's {args.budget:.0%} of the "
             f"built-in suite (features from `mini`); verifier accuracy of greedy answers on {len(target)} target "
             f"problems, {len(args.seeds)} seeds, paired t-tests over seeds.\n\n"
             f"`picks per target family`: mean count per seed ({', '.join(families)}; ground truth, for measuring "
             "only).\n\n"
             "| method | accuracy | useful share | picks per target family | p vs random | p vs full | p policy vs |\n"
             "|---|---:|---:|---:|---:|---:|---:|\n")
    for m, d in downstream.items():
        cells = [("" if d[k] is None else f"{d[k]:.2g}") for k in ("p_vs_random", "p_vs_full", "p_policy_vs")]
        mix = " / ".join(f"{d['target_picks'][t]:.1f}" for t in families)
        section += (f"| {m} | {d['accuracy_mean']:.3f} +- {d['accuracy_std']:.3f} | {d['useful_mean']:.2f} | {mix} | "
                    + " | ".join(cells) + " |\n")
    write_results(out, {"downstream": downstream, "downstream_settings": meta},
                  replace_section(out.with_suffix(".md"), "## Downstream", section), merge=True)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
