"""Mini's training regime: does fine-tuning `mini` on good data teach it the target, or only do less harm?

``reward_fidelity`` found that most 5% selections leave ``mini`` below its untrained accuracy, so a reward that
fine-tunes ``mini`` pays for harmlessness: an agent trained on it can learn to pick examples that change the model
least (garbled ones). SmolLM2, the real target, gains from almost every selection. This benchmark asks whether
another learning rate gives ``mini`` SmolLM2's regime: for the two fidelity pools, ``mini`` is fine-tuned as the
fidelity target is (3 epochs over the selection, batches of 8, AdamW with linear decay) at several learning rates
on four label-built selections of 5% (clean on-target, random, defective on-target, clean off-target; the labels
build these sets for measuring, no reward reads them), 3 seeds each (draw and training), and scored on the score
third of the target set. It reports each set's gain over the untrained model and the gap between clean and
defective picks in units of the seed-to-seed spread: the signal a grounded reward could rank selections by.

Run: ``.venv/bin/python -m benchmarks.accuracy.mini_regime`` (about 15 minutes on 2 cores; resumes after a kill,
runs in ``runs/mini-regime``). Writes ``benchmarks/results/mini_regime.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from benchmarks.accuracy.reward_fidelity import MINI_FT, POOLS, untrained
from benchmarks.envelope import (
    RESULTS,
    ROOT,
    command_line,
    environment,
    load_average,
    load_note,
    paired_p,
    write_results,
)
from selectgym.bench.harness import finetune_and_score
from selectgym.budget import resolve_budget
from selectgym.data.io import load_pool
from selectgym.data.suite import make_suite
from selectgym.data.targets import write_target_parts
from selectgym.finetune.config import FinetuneConfig
from selectgym.proxies.models import weights_digest
from selectgym.utils import write_json

OUT = ROOT / "runs" / "mini-regime"
#: (budget, learning rate): the fidelity budget at four rates, then twice the data at the two middle ones
REGIMES = ((0.05, 3e-3), (0.05, 1e-3), (0.05, 3e-4), (0.05, 1e-4), (0.10, 1e-3), (0.10, 3e-4))
SEEDS = (0, 1, 2)
SETS = ("on_clean", "random", "on_defect", "off_clean")


def pool_folder(name: str):
    """The fidelity pool ``name`` and its target thirds (the same pools and split as ``reward_fidelity``)."""
    folder = OUT / name
    if not (folder / "score.jsonl").exists():
        make_suite(folder / "suite", POOLS[name])
        write_target_parts(folder / "suite" / "validation.jsonl", folder / "observe.jsonl", folder / "reward.jsonl",
                           folder / "score.jsonl")
    return folder


def draw(pool, kind: str, n: int, seed: int) -> list[str]:
    """``n`` ids of the label-built set ``kind`` (labels build the sets; they are measured, never rewarded)."""
    meta = [ex.meta for ex in pool]
    rows = {"on_clean": [i for i, m in enumerate(meta) if m["on_target"] and m["clean"]],
            "on_defect": [i for i, m in enumerate(meta) if m["on_target"] and not m["clean"]],
            "off_clean": [i for i, m in enumerate(meta) if not m["on_target"] and m["clean"]],
            "random": list(range(len(meta)))}[kind]
    picks = np.random.default_rng([seed, SETS.index(kind)]).choice(rows, n, replace=False)
    return [pool[int(r)].id for r in picks]


def run(name: str) -> dict[str, Any]:
    folder = pool_folder(name)
    pool, score = load_pool(folder / "suite" / "sft.jsonl"), load_pool(folder / "score.jsonl")
    path = folder / "runs.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for budget, lr in REGIMES:
        n = resolve_budget(budget, len(pool))
        for kind in SETS:
            for seed in SEEDS:
                key = f"{budget:g}/{lr:g}/{kind}/{seed}"
                if key in done:
                    continue
                cfg = FinetuneConfig(method="sft", model="mini", seed=seed, output_dir=str(folder / "ft"),
                                     **{**MINI_FT, "lr": lr})
                out = finetune_and_score(cfg, pool, draw(pool, kind, n, seed), score)
                done[key] = {"accuracy": out["accuracy"], "val_loss": out["val_loss"]}
                write_json(path, done)
                print(f"{name} {budget:.0%} lr {lr:g} {kind} seed {seed}: {out['accuracy']:.3f}", flush=True)
    return {"untrained": untrained(folder, "mini"), "runs": done, "pool_size": len(pool)}


def summarise(pool: dict[str, Any]) -> dict[str, Any]:
    """Per regime (budget, learning rate): each set's mean +- std accuracy and gain over the untrained model, and
    the clean-vs-defective gap (paired over seeds) in units of the pooled seed-to-seed std."""
    base = pool["untrained"]
    out = {}
    for budget, lr in REGIMES:
        acc = {k: np.array([pool["runs"][f"{budget:g}/{lr:g}/{k}/{s}"]["accuracy"] for s in SEEDS]) for k in SETS}
        spread = float(np.sqrt(np.mean([a.var(ddof=1) for a in acc.values()])))
        gap = float(acc["on_clean"].mean() - acc["on_defect"].mean())
        out[label(budget, lr)] = {
            "budget": budget, "lr": lr, "selection_size": resolve_budget(budget, pool["pool_size"]),
            "sets": {k: {"mean": round(float(a.mean()), 4), "std": round(float(a.std(ddof=1)), 4),
                         "gain": round(float(a.mean() - base), 4)} for k, a in acc.items()},
            "clean_minus_defective": round(gap, 4),
            "p_clean_vs_defective": _p(acc["on_clean"], acc["on_defect"]),
            "gap_over_seed_std": round(gap / spread, 2) if spread > 0 else None,
            "clean_beats_untrained": bool(acc["on_clean"].mean() > base),
            "order_clean_random_defective": bool(acc["on_clean"].mean() > acc["random"].mean()
                                                 > acc["on_defect"].mean()),
        }
    return out


def label(budget: float, lr: float) -> str:
    return f"{budget:.0%}, lr {lr:g}"


def _p(a: np.ndarray, b: np.ndarray) -> float | None:
    """Paired p over seeds; None where every difference is the same (greedy answers unchanged by training)."""
    p = paired_p(list(a), list(b))
    return None if p is None or not np.isfinite(p) else round(float(p), 4)


def reading(pools: dict[str, Any]) -> str:
    """The facts a reader wants first, per pool: where clean picks gain over the untrained model by more than two
    seed stds, and where clean and defective picks are furthest apart."""
    lines = []
    for name, pool in pools.items():
        gains = [regime for regime, row in pool["by_regime"].items()
                 if row["sets"]["on_clean"]["gain"] > 2 * max(row["sets"]["on_clean"]["std"], 1e-9)]
        best = max(pool["by_regime"], key=lambda r: pool["by_regime"][r]["clean_minus_defective"])
        row = pool["by_regime"][best]
        lines.append(f"- {name}: clean on-target picks beat the untrained model ({pool['untrained']:.3f}) by more "
                     f"than two seed stds at " + ("; ".join(gains) if gains else "no budget and learning rate tried")
                     + f"; clean and defective picks are furthest apart at {best} "
                     f"({row['clean_minus_defective']:+.3f}, clean {row['sets']['on_clean']['gain']:+.3f} against "
                     "the untrained model).")
    return "\n".join(lines)


def markdown(rep: dict[str, Any]) -> str:
    sizes = ", ".join(map(str, rep["selection_sizes"]))
    lines = ["# Mini's training regime: does fine-tuning teach `mini` the target, or only harm it less?", "",
             f"Command: `{rep['command']}`. {rep['environment']}. {rep['load_note']} Proxy and target `mini` "
             f"(weights {rep['mini_digest']}).", "",
             f"`mini` fine-tuned on 5% or 10% ({sizes} examples) of each fidelity pool, sets built from the labels "
             "(clean on-target, random, defective on-target, clean off-target), as `reward_fidelity`'s target is "
             "trained (3 epochs, batches of 8, AdamW, linear decay; 5% at lr 0.001 is its regime), at each budget "
             f"and learning rate; {len(SEEDS)} seeds (draw and training); verifier accuracy on the score third. "
             "*gain*: over the untrained model. *gap / std*: clean minus defective, over the pooled seed-to-seed "
             "std; p paired over seeds.", ""]
    for name, pool in rep["pools"].items():
        lines += [f"## {name} (untrained: {pool['untrained']:.3f})", "",
                  "| budget, lr | clean on-target | random | defective on-target | clean off-target "
                  "| clean - defective (p) | gap / std |", "|---|---:|---:|---:|---:|---:|---:|"]
        for regime, row in pool["by_regime"].items():
            cells = [f"{row['sets'][k]['mean']:.3f} +- {row['sets'][k]['std']:.3f} ({row['sets'][k]['gain']:+.3f})"
                     for k in SETS]
            lines.append(f"| {regime} | " + " | ".join(cells) + f" | {row['clean_minus_defective']:+.3f} "
                         f"({_fmt(row['p_clean_vs_defective'])}) | {_fmt(row['gap_over_seed_std'])} |")
        lines.append("")
    lines += ["## What the numbers say", "", reading(rep["pools"]), "",
              "A p of n/a: every seed gave the same clean-minus-defective difference, so a t-test has no spread to "
              "weigh it by (at the lowest rates, because training left the greedy answers nearly unchanged).", ""]
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", nargs="+", choices=list(POOLS), default=list(POOLS))
    args = parser.parse_args(argv)
    before, started = load_average(), time.perf_counter()
    pools = {}
    for name in args.pools:
        raw = run(name)
        pools[name] = {"untrained": round(raw["untrained"], 4), "pool_size": raw["pool_size"],
                       "by_regime": summarise(raw), "runs": raw["runs"]}
    sizes = sorted({row["selection_size"] for p in pools.values() for row in p["by_regime"].values()})
    rep = {"command": command_line(__file__, argv), "environment": environment(),
           "load_note": load_note(before, load_average()), "mini_digest": weights_digest("mini"),
           "selection_sizes": sizes, "seeds": list(SEEDS), "pools": pools,
           "seconds_this_call": round(time.perf_counter() - started, 1)}
    write_results(RESULTS / "mini_regime", rep, markdown(rep))
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
