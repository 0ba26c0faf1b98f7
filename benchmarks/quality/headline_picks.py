"""What each headline method picks: its 5% of the headline pool described by ground truth and the proxy's features.

It re-runs only the selections of ``benchmarks/accuracy/bench_headline.yaml`` and
``benchmarks/accuracy/bench_headline_pool_policy.yaml``
(the same pool, target halves, features and seeds; no fine-tuning) and counts, per method, the picks by kind
(clean and on-target, or which defect), by task family, with the mean answer length and the proxy's loss and
length features. Ground truth is read here for measuring only. Each method's useful share is set beside the one
``headline.json`` recorded for its fine-tuned runs: equal shares say the table describes the picks that were
trained on; other shares say the headline's runs were selected from other features (another build of the proxy).

Run: ``.venv/bin/python -m benchmarks.quality.headline_picks`` from the checkout root (a few minutes; it computes
the features and trains the pool policies it lacks, and needs the transfer policies of
``benchmarks/accuracy/bench_headline.yaml``).
Writes ``benchmarks/results/headline_picks.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np

from benchmarks.envelope import RESULTS, command_line, write_results
from benchmarks.harness import HEADLINE_CONFIGS, bench_config
from selectgym.bench.harness import Bench
from selectgym.data import load_pool

#: (label, the headline benchmark it comes from (a key of HEADLINE_CONFIGS), method)
METHODS = [("policy (transfer)", "mini", "policy"), ("less", "mini", "less"), ("nice", "mini", "nice"),
           ("gradalign:sim", "mini", "gradalign:sim"), ("dpo_gap", "mini", "dpo_gap"), ("random", "mini", "random"),
           ("policy (trained on this pool)", "pool_policy", "policy")]
KINDS = ("useful", "on-target wrong_answer", "on-target truncated", "on-target garbled", "on-target duplicate",
         "off-target clean", "off-target defect")


def kind(meta: dict) -> str:
    if meta["useful"]:
        return "useful"
    if meta["on_target"]:
        return f"on-target {meta['defect']}"
    return "off-target clean" if meta["clean"] else "off-target defect"


def describe(ids: list[str], pool, train) -> dict:
    rows = [pool[pool.index(i)] for i in ids]
    at = {i: k for k, i in enumerate(train.ids)}
    pos = np.array([at[i] for i in ids])
    answers = [len(r.response or "") for r in rows]
    return {"n": len(rows), "kinds": Counter(kind(r.meta) for r in rows),
            "families": Counter(r.meta["task"] for r in rows), "answer_chars": float(np.mean(answers)),
            "loss": float(np.mean(np.asarray(train.get("loss"))[pos])),
            "length": float(np.mean(np.asarray(train.get("length"))[pos]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args(argv)
    started = time.perf_counter()
    benches, per = {}, {}  # benchmark name -> (bench, pool, train table, val table), each built once
    for label, name, method in METHODS:
        if name not in benches:
            bench = Bench(bench_config(HEADLINE_CONFIGS[name]), progress=True)
            suite = bench.pools()
            benches[name] = (bench, load_pool(suite / "sft.jsonl"), *bench.features(suite))
        bench, pool, train, val = benches[name]
        per[label] = [describe(bench.select(method, 0.05, seed, train, val)[0], pool, train) for seed in args.seeds]
    _, pool, train, _ = benches["mini"]
    whole = describe(list(pool.ids), pool, train)
    headline = json.loads((RESULTS / "headline.json").read_text())
    recorded = {label: [r["useful_share"] for r in headline["runs"].get(name, []) if r["method"] == method
                        and r["seed"] in args.seeds] for label, name, method in METHODS}
    out = {"command": command_line(__file__, argv), "seeds": args.seeds,
           "seconds": time.perf_counter() - started, "pool": whole, "methods": per,
           "headline_useful_share": {k: float(np.mean(v)) if v else None for k, v in recorded.items()}}
    families = sorted(whole["families"])
    head = ["method", *KINDS, *families, "answer chars", "proxy loss", "length", "useful share",
            "in headline.json"]
    lines = [f"# What each headline method picks (5% of the 1,000-example pool, mean count per seed over "
             f"{len(args.seeds)} seeds)", "", f"Command: `{out['command']}` ({out['seconds']:.0f} s).", "",
             "| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]

    def row(label: str, ds: list[dict], scale: float = 1.0) -> str:
        cells = [f"{np.mean([d['kinds'].get(k, 0) for d in ds]) * scale:.1f}" for k in KINDS]
        cells += [f"{np.mean([d['families'].get(f, 0) for d in ds]) * scale:.1f}" for f in families]
        cells += [f"{np.mean([d[k] for d in ds]):.2f}" for k in ("answer_chars", "loss", "length")]
        cells.append(f"{np.mean([d['kinds'].get('useful', 0) / d['n'] for d in ds]):.2f}")
        cells.append("-" if out["headline_useful_share"].get(label) is None else
                     f"{out['headline_useful_share'][label]:.2f}")
        return f"| {label} | " + " | ".join(cells) + " |"

    lines += [row(label, ds) for label, ds in per.items()]
    lines.append(row("whole pool, scaled to 50", [whole], 50 / len(pool)))
    write_results(RESULTS / "headline_picks", out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
