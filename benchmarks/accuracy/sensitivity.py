"""Is the target sensitive to what it is trained on? SmolLM2 fine-tuned on 5% selections of known quality.

Run: ``.venv/bin/python -m benchmarks.accuracy.sensitivity`` from the checkout root (about an hour on 2 CPU cores).

On the built-in suite (``--size`` examples, ``--validation-size`` target problems), for every seed three
selections of ``--budget`` x size examples are drawn with that seed from the pool's ground truth (read here
for measuring only, as an oracle no selector has; ``benchmarks.harness.selection``):

- ``clean``: clean examples of the target families;
- ``defective``: target-family examples with a defect (wrong answer, truncated, garbled, duplicate);
- ``random``: any examples, uniformly.

SmolLM2-135M-Instruct is fine-tuned on each with LoRA SFT (``--steps`` steps, batch ``--batch-size``, lr
``--lr``, the fine-tuning seed = the seed) and scored by verifier accuracy of greedy answers on the
target problems (``selectgym.bench.harness.finetune_and_score``). The result is the mean accuracy per kind, the
untrained model's accuracy, and the paired t-test of clean vs random over seeds. It is merged into ``--out``.json
under the key ``sensitivity`` and appended to ``--out``.md; runs are kept in ``--work`` so a killed run resumes where
it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.envelope import command_line, load_average, load_note, paired_test, replace_section, write_results
from benchmarks.harness import KINDS, selection
from selectgym.bench.harness import finetune_and_score
from selectgym.data import load_pool
from selectgym.data.suite import SuiteConfig, make_suite
from selectgym.finetune.config import FinetuneConfig
from selectgym.finetune.evaluate import evaluate
from selectgym.proxies.models import load_model
from selectgym.utils import write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="smollm2", help="target model")
    parser.add_argument("--suite-seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=600, help="suite pool size")
    parser.add_argument("--validation-size", type=int, default=200, help="target validation problems")
    parser.add_argument("--budget", type=float, default=0.05, help="selection size, a share of the pool")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=12, help="LoRA SFT steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--work", default="runs/sensitivity", help="suite, adapters and per-run results")
    parser.add_argument("--out", default="benchmarks/results/testbed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = load_average()

    work = Path(args.work)
    make_suite(work / "suite", SuiteConfig(seed=args.suite_seed, size=args.size,
                                           validation_size=args.validation_size))
    pool = load_pool(work / "suite" / "sft.jsonl")
    val = load_pool(work / "suite" / "validation.jsonl", "verifiable")
    n = round(args.budget * len(pool))

    done_path = work / "runs.json"
    runs = json.loads(done_path.read_text()) if done_path.exists() else {}
    if "base" not in runs:
        model, tok = load_model(args.target)
        runs["base"] = evaluate(model, tok, val, max_new_tokens=args.max_new_tokens)
        write_json(done_path, runs)
        del model
    print(f"untrained accuracy {runs['base']['accuracy']:.3f}", flush=True)
    for seed in args.seeds:
        for kind in KINDS:
            key = f"{kind}-{seed}"
            if key in runs:
                continue
            t0 = time.perf_counter()
            cfg = FinetuneConfig(method="sft", model=args.target, seed=seed, lr=args.lr, max_steps=args.steps,
                                 batch_size=args.batch_size, output_dir=str(work / "ft" / key))
            scored = finetune_and_score(cfg, pool, selection(pool, kind, n, seed), val, args.max_new_tokens)
            runs[key] = {**scored, "seconds": time.perf_counter() - t0}
            write_json(done_path, runs)
            print(f"{key}: accuracy {scored['accuracy']:.3f} ({runs[key]['seconds']:.0f} s)", flush=True)

    acc = {k: np.array([runs[f"{k}-{s}"]["accuracy"] for s in args.seeds]) for k in KINDS}
    p = paired_test(acc["clean"], acc["random"])[1]  # nan with one seed
    p_bad = paired_test(acc["clean"], acc["defective"])[1]
    result = {"clean": float(acc["clean"].mean()), "defective": float(acc["defective"].mean()),
              "random": float(acc["random"].mean()), "p_clean_vs_random": p, "p_clean_vs_defective": p_bad,
              "seeds": len(args.seeds),
              "n_val": len(val), "n_selected": n, "untrained": runs["base"]["accuracy"],
              "std": {k: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in acc.items()},
              "per_seed": {k: v.tolist() for k, v in acc.items()},
              "settings": {"target": args.target, "pool": len(pool), "steps": args.steps,
                           "batch_size": args.batch_size, "lr": args.lr, "suite_seed": args.suite_seed},
              "command": command_line(__file__, argv),
              "seconds": round(sum(r.get("seconds", 0.0) for r in runs.values()), 1)}  # the runs' own, cached or not
    result["load_note"] = load_note(before, load_average())
    restored = sorted(k for k, r in runs.items() if r.get("restored") or "source" in r)
    if restored:  # runs whose accuracy was carried over from an earlier results file (same selection and training)
        result["restored_runs"] = restored
    out = Path(args.out)
    sd = result["std"]
    section = (f"## Target sensitivity\n\nCommand: `{result['command']}` ({result['seconds']:.0f} s). "
             f"{result['load_note']}\n\n"
             f"{args.target} fine-tuned with LoRA SFT ({args.steps} steps, batch {args.batch_size}, lr {args.lr}) on "
             f"{n} examples ({args.budget:.0%} of a {len(pool)}-example suite) of each kind, drawn from the pool's "
             f"ground truth; verifier accuracy of greedy answers on {len(val)} target problems, "
             f"{len(args.seeds)} seeds (mean +- std). Untrained: {result['untrained']:.3f}."
             + (f" {len(restored)} figures ({', '.join(restored)}) come from an earlier run of this command "
                "(the same selections and training), so the seconds above count only the runs made since."
                if restored else "") + "\n\n"
             "| selection | accuracy |\n|---|---:|\n"
             + "".join(f"| {k} | {result[k]:.3f} +- {sd[k]:.3f} |\n" for k in KINDS)
             + f"\nPaired t-tests over seeds: clean vs random p = {p:.2g}, clean vs defective p = {p_bad:.2g}. "
             + ("Clean beats random at the 1% level." if p < 0.01 else
                f"Clean beats random by {result['clean'] - result['random']:+.3f} but p = {p:.2g} is above the 1% "
                "the target was expected to reach: 5 seeds of 30 examples are noisy at this size.") + "\n")
    text = replace_section(out.with_suffix(".md"), "## Target sensitivity", section)
    write_results(out, {"sensitivity": result}, text, merge=True)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
