"""Turn benchmark runs into a Markdown table (mean +- std over seeds, paired tests) and PNG plots.

A run is one (method, budget, seed) with its metrics and costs; the same seeds are used for every method,
so comparisons against random and full data are paired by seed (and budget).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selectgym.budget import budget_label, budget_order, is_count

FULL = "full"
RANDOM = "random"
#: metrics a run has only in some regimes (DPO's preference accuracy, the picked share of an opt-in suite defect),
#: with their column titles: a summary row and the table carry them only when some run does
OPTIONAL = {"preference_accuracy": "preference accuracy", "noisy_share": "noisy-reward share",
            "pair_defect_share": "defective-pair share"}


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def paired_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean difference a - b and the two-sided paired t-test p-value (nan when undefined)."""
    from scipy import stats

    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = a_ - b_
    if len(diff) < 2 or np.allclose(diff, diff[0]):
        return float(diff.mean()) if len(diff) else math.nan, math.nan
    return float(diff.mean()), float(stats.ttest_rel(a_, b_).pvalue)


def summarise(runs: list[dict[str, Any]], metric: str = "accuracy") -> list[dict[str, Any]]:
    """One row per (method, budget): mean/std of the metric and costs, paired deltas vs random and full."""
    by_key: dict[tuple[str, float], dict[int, dict[str, Any]]] = defaultdict(dict)
    for run in runs:
        by_key[(run["method"], run["budget"])][run["seed"]] = run
    full = next((v for (m, _), v in by_key.items() if m == FULL), {})
    rows = []
    for (method, budget), per_seed in sorted(by_key.items(), key=lambda kv: (budget_order(kv[0][1]), kv[0][0])):
        seeds = sorted(per_seed)
        values = [per_seed[s][metric] for s in seeds]
        row = {
            "method": method, "budget": budget, "seeds": len(seeds),
            "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "val_loss": float(np.mean([per_seed[s].get("val_loss", math.nan) for s in seeds])),
            "useful_share": float(np.mean([per_seed[s].get("useful_share", math.nan) for s in seeds])),
            "select_s": float(np.mean([per_seed[s].get("select_seconds", 0.0) for s in seeds])),
            "train_s": float(np.mean([per_seed[s].get("train_seconds", 0.0) for s in seeds])),
        }
        for key in OPTIONAL:  # mean over the seeds that have it
            have = [per_seed[s][key] for s in seeds if key in per_seed[s]]
            if have:
                row[key] = float(np.mean(have))
        for ref_name, ref in ((RANDOM, by_key.get((RANDOM, budget), {})), (FULL, full)):
            common = [s for s in seeds if s in ref]
            if method == ref_name or not common:
                row[f"vs_{ref_name}"], row[f"p_{ref_name}"] = math.nan, math.nan
                continue
            row[f"vs_{ref_name}"], row[f"p_{ref_name}"] = paired_test(
                [per_seed[s][metric] for s in common], [ref[s][metric] for s in common])
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]], metric: str = "accuracy") -> str:
    """The summary as a Markdown table; an ``OPTIONAL`` metric gets a column after the share of clean on-target
    picks when some row has it."""
    extra = [k for k in OPTIONAL if any(k in r for r in rows)]
    head = (f"| method | budget | {metric} (mean +- std) | vs random (p) | vs full (p) | clean & on-target share "
            + "".join(f"| {OPTIONAL[k]} " for k in extra) + "| val loss | select s | train s |")
    lines = [head, "|" + "---|" * (9 + len(extra))]
    for r in rows:
        budget = "100%" if r["method"] == FULL else budget_label(r["budget"])
        lines.append(
            f"| {r['method']} | {budget} | {_fmt(r['mean'])} +- {_fmt(r['std'])} "
            f"| {_fmt(r['vs_random'], 3)} ({_fmt(r['p_random'], 2)}) "
            f"| {_fmt(r['vs_full'], 3)} ({_fmt(r['p_full'], 2)}) | {_fmt(r['useful_share'], 2)} "
            + "".join(f"| {_fmt(r.get(k), 3 if k == 'preference_accuracy' else 2)} " for k in extra)
            + f"| {_fmt(r['val_loss'])} | {_fmt(r['select_s'], 1)} | {_fmt(r['train_s'], 1)} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], out_dir: str | Path, metric: str = "accuracy") -> list[Path]:
    """Two PNGs: the metric and the share of clean on-target picks per method (against the budget when there
    are several), and selection vs training cost per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methods = sorted({r["method"] for r in rows if r["method"] != FULL})
    budgets = sorted({r["budget"] for r in rows if r["method"] != FULL}, key=budget_order)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    panels = ((metric, "mean", "std", f"{metric} (mean +- std over seeds)"),
              ("clean & on-target share of the picks", "useful_share", None, "what each method picked"))
    for ax, (label, key, err, title) in zip(axes, panels, strict=True):
        if len(budgets) == 1:  # one budget: bars read better than one-point lines
            pts = [next(r for r in rows if r["method"] == m) for m in methods]
            ax.bar(methods, [r[key] for r in pts], yerr=[r[err] for r in pts] if err else None, capsize=4,
                   color="tab:blue")
            ax.set_xlabel(f"method (budget {budget_label(budgets[0])}"
                          f"{'' if is_count(budgets[0]) else ' of the pool'})")
            plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        else:
            counts = [is_count(b) for b in budgets]
            # shares on a % axis, counts on a count axis; a mix of both on evenly spaced labelled positions
            where = ({b: 100 * b for b in budgets} if not any(counts) else {b: float(b) for b in budgets}
                     if all(counts) else {b: i for i, b in enumerate(budgets)})
            for m in methods:
                pts = sorted(((r["budget"], r[key], r[err] if err else 0.0) for r in rows if r["method"] == m),
                             key=lambda p: budget_order(p[0]))
                xs, ys, es = zip(*pts, strict=True)
                ax.errorbar([where[x] for x in xs], ys, yerr=es, marker="o", capsize=3, label=m)
            if any(counts) and not all(counts):
                ax.set_xticks(range(len(budgets)), [budget_label(b) for b in budgets])
            ax.set_xlabel("budget (% of pool)" if not any(counts) else "budget (examples)" if all(counts) else "budget")
        for r in rows:
            if r["method"] == FULL:
                ax.axhline(r[key], color="black", linestyle="--", label="full data / whole pool")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.set_ylabel(label)
        ax.set_title(title)
    fig.tight_layout()
    p1 = out / f"{metric}_vs_budget.png"
    fig.savefig(p1, dpi=120)
    plt.close(fig)

    names = sorted({r["method"] for r in rows})
    sel = [np.mean([r["select_s"] for r in rows if r["method"] == m]) for m in names]
    trn = [np.mean([r["train_s"] for r in rows if r["method"] == m]) for m in names]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.bar(names, sel, label="selection")
    ax.bar(names, trn, bottom=sel, label="training")
    ax.set_ylabel("seconds per run")
    ax.set_title("cost of selection next to the cost of training")
    ax.legend()
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    p2 = out / "cost_per_method.png"
    fig.savefig(p2, dpi=120)
    plt.close(fig)
    return [p1, p2]
