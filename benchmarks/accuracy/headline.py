"""The headline: SmolLM2 fine-tuned on 5% of a 1,000-example pool, picked by every method, against full data.

Run: ``.venv/bin/python -m benchmarks.accuracy.headline`` from the checkout root (about two hours on 2 CPU cores;
both benchmarks resume where a killed run stopped). Its configs lie beside this file. It runs ``bench_headline.yaml``
(features from ``mini``; the default transfer policy, LESS, NICE, GradAlign sim, the DPO gap, random and full data)
and then ``bench_headline_smollm2_proxy.yaml`` (LESS on SmolLM2's own gradients, the same pool, target halves and
seeds, so its runs pair with the first benchmark's random and full-data runs). ``--skip-smollm2-proxy`` leaves
the second out; ``--report-only`` writes the results from the runs saved so far (only seeds every method has
finished) without running anything; ``--reuse mini`` takes the first benchmark's runs from the committed
``headline.json`` (refused unless its config is the same, and unless its proxy weights are this machine's build
when it recorded them) instead of running it again; ``--reuse-baselines`` takes only its random and full-data
runs, which read no proxy, and runs the rest. A third benchmark, ``bench_headline_pool_policy.yaml``, trains the
default policy's design on this very pool for each seed (``--skip pool_policy`` leaves it out), and a fourth,
``bench_headline_pool_policy_balanced.yaml``, shares that policy's budget among the target's subtasks.
Writes ``benchmarks/results/headline.{json,md}`` and the first benchmark's two plots beside them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.envelope import (
    RESULTS,
    ROOT,
    command_line,
    environment,
    load_average,
    load_note,
    paired_test,
    section_of,
    write_results,
)
from benchmarks.harness import BASELINES, HEADLINE_CONFIGS, bench_config
from selectgym.bench.config import BenchConfig, changed_settings
from selectgym.bench.harness import run_bench
from selectgym.bench.report import plot, summarise
from selectgym.data.suite import SuiteConfig
from selectgym.proxies.models import weights_digest
from selectgym.utils import write_json

CONFIGS = HEADLINE_CONFIGS
#: how the rows of the benchmarks after the first are told apart from its own: (label, proxy)
LABELS = {"smollm2": ("SmolLM2 proxy", "smollm2"), "pool_policy": ("trained on this pool", "mini"),
          "pool_policy_balanced": ("trained on this pool, subtasks balanced", "mini")}


def saved(cfg: BenchConfig) -> dict | None:
    """The runs a benchmark has saved so far (None before its first), with its plots drawn from them."""
    path = Path(cfg.out) / "runs.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    finished = {(r["method"], r["seed"]) for r in result["runs"] + result.get("failures", [])}
    seeds = [s for s in cfg.seeds if all((m, s) in finished for m in cfg.methods)]
    result["runs"] = [r for r in result["runs"] if r["seed"] in seeds]
    result["plots"] = [str(p) for p in plot(summarise(result["runs"]), cfg.out)]
    return result


def committed(name: str, cfg: BenchConfig, check_build: bool = True) -> dict:
    """One benchmark's runs, costs and failures as the committed ``headline.json`` holds them; ``check_build``
    refuses them if they record proxy weights other than this machine's build."""
    report = json.loads((RESULTS / "headline.json").read_text())
    if name not in report.get("configs", {}) or changed_settings(report["configs"][name], cfg):
        print(f"error: benchmarks/results/headline.json holds no {name} runs with the settings of "
              f"{CONFIGS[name].name}: run that benchmark instead of reusing it", file=sys.stderr)
        sys.exit(2)
    recorded = report.get("proxy_digests", {}).get(name)
    here = weights_digest(cfg.proxy) if check_build else recorded
    if recorded is not None and recorded != here:
        print(f"error: the committed {name} runs were selected with another build of {cfg.proxy} (weights "
              f"{recorded}, here {here}; a proxy pretrained on another machine has other weights): run that "
              "benchmark instead of reusing it", file=sys.stderr)
        sys.exit(2)
    if recorded is None and check_build:
        print(f"note: the committed {name} runs do not record their proxy's weights, so they cannot be checked "
              f"against this build of {cfg.proxy}", file=sys.stderr)
    runs = report["runs"][name]
    return {"config": report["configs"][name], "runs": runs, "costs": report["costs"][name], "proxy_digest": recorded,
            "failures": report["failures"][name], "plots": [str(p) for p in plot(summarise(runs), cfg.out)]}


def seed_baselines(cfg: BenchConfig) -> None:
    """Start the mini benchmark from the committed random and full-data runs: neither reads the proxy, so they
    stand for any build of it, and they are the slowest runs (full data is a whole epoch). A run already started
    keeps its own."""
    path = Path(cfg.out) / "runs.json"
    if path.exists():
        return
    report = committed("mini", cfg, check_build=False)
    write_json(path, {"config": report["config"], "failures": [],
                      "runs": [r for r in report["runs"] if r["method"] in BASELINES]})


def cell(x: float, digits: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", choices=sorted(LABELS), action="append", default=[],
                        help="leave this benchmark out (the mini-proxy one always runs)")
    parser.add_argument("--skip-smollm2-proxy", action="store_true", help="the same as --skip smollm2")
    parser.add_argument("--report-only", action="store_true",
                        help="write the results files from the runs saved so far, without running any")
    parser.add_argument("--reuse", choices=sorted(CONFIGS), action="append", default=[],
                        help="take this benchmark's runs from the committed headline.json instead of running it")
    parser.add_argument("--reuse-baselines", action="store_true",
                        help="take the mini benchmark's random and full-data runs, which read no proxy, from the "
                             "committed headline.json and run only the methods that read the proxy")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before, started = load_average(), time.perf_counter()
    skip = set(args.skip) | ({"smollm2"} if args.skip_smollm2_proxy else set())
    chosen = {name: bench_config(path) for name, path in CONFIGS.items() if name not in skip}
    results = {name: committed(name, cfg) for name, cfg in chosen.items() if name in args.reuse}
    if args.reuse_baselines and "mini" not in results and not args.report_only:
        seed_baselines(chosen["mini"])
    for name, cfg in chosen.items():
        if name in results:
            continue
        if args.report_only:
            if (r := saved(cfg)) is not None:
                results[name] = r
        else:
            results[name] = run_bench(cfg)
    results = {name: results[name] for name in chosen if name in results}
    main_runs = results["mini"]["runs"]
    cfg = results["mini"]["config"]
    rows = [{**r, "proxy": "mini"} for r in summarise(main_runs)]
    baselines = [r for r in main_runs if r["method"] in BASELINES]
    for name, (label, proxy) in LABELS.items():  # paired with the mini benchmark's random and full runs by seed
        if name in results:
            for row in summarise(results[name]["runs"] + baselines):
                if row["method"] not in BASELINES:
                    rows.append({**row, "method": f"{row['method']} ({label})", "proxy": proxy})
    suite = SuiteConfig(seed=cfg["suite_seed"], size=cfg["suite_size"], validation_size=cfg["validation_size"])
    n_val = cfg["validation_size"] // 2 if cfg["split_target"] else cfg["validation_size"]
    report = {
        "command": command_line(__file__, argv),
        "environment": environment(args.threads),
        "configs": {name: asdict(bench_config(path)) for name, path in CONFIGS.items() if name in results},
        "summary": rows, "costs": {name: r["costs"] for name, r in results.items()},
        "proxy_digests": {name: r.get("proxy_digest") for name, r in results.items()},
        "runs": {name: [{k: v for k, v in run.items() if k != "ids"} for run in r["runs"]]
                 for name, r in results.items()},
        "failures": {name: r["failures"] for name, r in results.items()},
        "seconds_this_call": round(time.perf_counter() - started, 1),
        "load_note": load_note(before, load_average()),
    }
    for png in results["mini"]["plots"]:
        shutil.copyfile(png, RESULTS / f"headline_{Path(png).name}")

    lines = ["# Headline: SmolLM2-135M-Instruct fine-tuned on 5% of a 1,000-example pool", "",
             f"Command: `{report['command']}`. {report['environment']}, no GPU. {report['load_note']}", "",
             f"Pool: the built-in suite (seed {cfg['suite_seed']}, {cfg['suite_size']} examples; "
             f"{suite.target_share:.0%} from the target families, {suite.defect_rate:.0%} with defects). "
             f"Target set: {cfg['validation_size']} problems of the target "
             f"families, split alternately within each family: the selectors align with one half, and every method "
             f"is scored on the other {n_val} (verifier accuracy of greedy answers, {cfg['max_new_tokens']} new "
             f"tokens). Each {cfg['budgets'][0]:.0%} selection trains SmolLM2 with LoRA SFT for {cfg['ft_max_steps']} "
             f"steps (batch {cfg['ft_batch_size']}, lr {cfg['ft_lr']}); `full` trains one epoch over the whole pool. "
             f"Features from the `mini` proxy (d = {cfg['proj_dim']}); `policy` is the default transfer policy "
             "(`configs/policy_transfer.yaml`, trained with each seed on pools of other composition, never on this "
             "pool); `policy (trained on this pool)` is the same design trained for each seed on this pool "
             f"(`{CONFIGS['pool_policy'].relative_to(ROOT)}`). {len({r['seed'] for r in main_runs})} seeds (selection "
             "and training); paired t-tests over seeds. "
             "`useful share`: clean and on-target picks (ground truth, read for measuring only).", "",
             "| method | proxy | accuracy (mean +- std) | vs random (p) | vs full (p) | useful share | select s | "
             "train s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['proxy'] if r['method'] not in ('random', 'full') else '-'} | "
                     f"{r['mean']:.3f} +- {r['std']:.3f} | {cell(r['vs_random'])} ({cell(r['p_random'], 2)}) | "
                     f"{cell(r['vs_full'])} ({cell(r['p_full'], 2)}) | {r['useful_share']:.2f} | "
                     f"{r['select_s']:.0f} | {r['train_s']:.0f} |")
    acc: dict[str, dict[int, float]] = {}
    for name, r in results.items():
        for run in r["runs"]:
            label = run["method"] if name == "mini" else f"{run['method']} ({LABELS[name][0]})"
            acc.setdefault(label, {})[run["seed"]] = run["accuracy"]
    best = max((r for r in rows if not r["method"].startswith("policy") and r["method"] not in BASELINES),
               key=lambda r: r["mean"])
    common = sorted(set(acc.get("policy", {})) & set(acc[best["method"]]))
    diff, p = paired_test([acc["policy"][s] for s in common], [acc[best["method"]][s] for s in common])
    lines += ["", f"Best classic selector: {best['method']} ({best['mean']:.3f}); policy minus it: {diff:+.3f} "
              f"(paired p = {cell(p, 2)}).", "",
              "`select s` is the selection's whole cost per seed: the proxy's features for every method that needs "
              "them (computed once, charged to each), plus scoring or applying the policy (the transfer policy's "
              "own training, once, is not charged; the pool-trained policy's is). `train s` is SmolLM2's LoRA "
              "fine-tuning. Feature cost (s): "
              + "; ".join(f"{name} proxy: " + ", ".join(f"{k} {v:.0f}" for k, v in c.items()
                                                         if not k.startswith("agent"))
                          for name, c in report["costs"].items()) + ".",
              "", "Proxy weights (digest of the build each benchmark's features came from; a proxy pretrained on "
              "another machine has other weights, other features and other picks): "
              + "; ".join(f"{name} ({chosen[name].proxy}): {d or 'not recorded'}"
                          for name, d in report["proxy_digests"].items()) + "."
              + (" `random` and `full` read no proxy; their runs come from an earlier call (`--reuse-baselines`)."
                 if args.reuse_baselines else ""),
              "", "Plots: `headline_accuracy_vs_budget.png` (accuracy and useful share per method), "
              "`headline_cost_per_method.png` (selection vs training seconds)."]
    failed = [f"{f['method']} seed {f['seed']}: {f['error']}" for fs in report["failures"].values() for f in fs]
    if failed:
        lines += ["", "Failed runs: " + "; ".join(failed) + "."]
    # merged: headline_rules.py adds its comparison (vs_fixed_rules, and its section of the Markdown) to these files;
    # the hand-written reading of an earlier run, which comes before that section, stays until it is rewritten
    kept = (section_of(RESULTS / "headline.md", "## What the numbers say")
            or section_of(RESULTS / "headline.md", "## Against the best fixed rule"))
    write_results(RESULTS / "headline", report, "\n".join(lines) + "\n" + kept, merge=True)
    if "## What the numbers say" in kept:
        print("kept the hand-written '## What the numbers say' of headline.md: rewrite it if the numbers moved")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
