"""What each headline method picks: its 5% of the headline pool described by ground truth and the proxy's features.

It re-runs only the selections of ``configs/bench_headline.yaml`` and ``configs/bench_headline_pool_policy.yaml``
(the same pool, target halves, features and seeds; no fine-tuning) and counts, per method, the picks by kind
(clean and on-target, or which defect), by task family, with the mean answer length and the proxy's loss and
length features. Ground truth is read here for measuring only. Each method's useful share is set beside the one
``headline.json`` recorded for its fine-tuned runs: equal shares say the table describes the picks that were
trained on; other shares say the headline's runs were selected from other features (another build of the proxy).

Run: ``.venv/bin/python benchmarks/headline_picks.py`` (a few minutes; it computes the features and trains the
pool policies it lacks, and needs the transfer policies of ``configs/bench_headline.yaml``).
Writes ``benchmarks/results/headline_picks.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from selectgym.bench.config import BenchConfig
from selectgym.bench.harness import Bench
from selectgym.data import load_pool
from selectgym.utils import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
#: (label, config, method)
METHODS = [("policy (transfer)", "bench_headline.yaml", "policy"), ("less", "bench_headline.yaml", "less"),
           ("nice", "bench_headline.yaml", "nice"), ("gradalign:sim", "bench_headline.yaml", "gradalign:sim"),
           ("dpo_gap", "bench_headline.yaml", "dpo_gap"), ("random", "bench_headline.yaml", "random"),
           ("policy (trained on this pool)", "bench_headline_pool_policy.yaml", "policy")]
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
    benches, per = {}, {}  # config name -> (bench, pool, train table, val table), each built once
    for label, name, method in METHODS:
        if name not in benches:
            bench = Bench(BenchConfig(**yaml.safe_load((ROOT / "configs" / name).read_text())), progress=True)
            suite = bench.pools()
            benches[name] = (bench, load_pool(suite / "sft.jsonl"), *bench.features(suite))
        bench, pool, train, val = benches[name]
        per[label] = [describe(bench.select(method, 0.05, seed, train, val)[0], pool, train) for seed in args.seeds]
    _, pool, train, _ = benches["bench_headline.yaml"]
    whole = describe(list(pool.ids), pool, train)
    headline = json.loads((RESULTS / "headline.json").read_text())
    parts = {"bench_headline.yaml": "mini", "bench_headline_pool_policy.yaml": "pool_policy"}
    recorded = {label: [r["useful_share"] for r in headline["runs"].get(parts[name], []) if r["method"] == method
                        and r["seed"] in args.seeds] for label, name, method in METHODS}
    out = {"command": "cd /work/main && .venv/bin/python " + shlex.join(sys.argv), "seeds": args.seeds,
           "seconds": time.perf_counter() - started, "pool": whole, "methods": per,
           "headline_useful_share": {k: float(np.mean(v)) if v else None for k, v in recorded.items()}}
    write_json(RESULTS / "headline_picks.json", out)
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
    (RESULTS / "headline_picks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
