"""Does the headline hold for other builds of ``mini``? The same benchmark on several pretrained proxies.

``mini`` is pretrained where it runs, so its weights, features and picks are one draw among many: the headline
(``benchmarks/results/headline.md``) ranked the policy first on one machine's build and level with LESS on
another's. This benchmark makes the build a measured factor. For each build seed B (``MiniConfig.seed``; B = 0
is the default build that ``load_model("mini")`` uses) it

1. pretrains ``mini`` with that seed (cached; 6-10 minutes on 1 thread),
2. trains the default transfer policy with seeds 0-4 on that build's features, exactly as
   ``selectgym train-agent --config configs/policy_transfer.yaml --seed S`` does with the pools' proxy set to
   that build,
3. runs the headline's ``mini`` benchmark (``bench_headline.yaml`` beside this file: the same pool, target halves,
   budget, fine-tuning and seeds) for the methods that read the proxy (``--methods``, default the policy and LESS).

Random and full data read no proxy, so one set of their runs pairs with every build. They come from the
committed ``headline.json``, after random is rerun here and must give the same accuracies: the check that
SmolLM2's fine-tuning on this CPU matches the machine that made them (``--run-full`` reruns full data instead,
about 40 minutes). Paired t-tests over (build, seed) pairs, and over per-build means.

Run: ``.venv/bin/python -m benchmarks.accuracy.builds`` from the checkout root (on 2 CPU cores about 25 minutes per
pretrained build and 12 for random; a killed run resumes where it stopped; ``--reuse-committed`` runs nothing and
writes the report again from the committed runs, in seconds). Writes ``benchmarks/results/builds.{json,md}``; the
results file's "What it says" is written by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from benchmarks.envelope import (
    RESULTS,
    ROOT,
    command_line,
    environment,
    load_average,
    load_note,
    paired_test,
    write_results,
)
from benchmarks.harness import BASELINES, HEADLINE_CONFIGS, POLICY_CONFIG, bench_config
from selectgym.bench.harness import run_bench
from selectgym.cli import main as cli
from selectgym.proxies.mini import MINI_NAME, MiniConfig, mini_dir
from selectgym.proxies.models import weights_digest

OUT = ROOT / "runs" / "builds"


def proxy_of(build: int) -> str:
    """The proxy name a config gives for build ``build``: ``mini`` for the default one, else its folder."""
    if build == MiniConfig().seed:
        return MINI_NAME
    return str(mini_dir(MiniConfig(seed=build), progress=True))


def train_policies(build: int, proxy: str, seeds: list[int]) -> dict[int, float]:
    """The default policy for each seed on this build's features (skipped where saved); seconds per new one."""
    seconds = {}
    for seed in seeds:
        out = OUT / f"build-{build}" / "policies" / f"policy-s{seed}.zip"
        if out.exists():
            continue
        raw = yaml.safe_load(POLICY_CONFIG.read_text())
        raw["training_pools"]["proxy"] = proxy
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "policy.yaml"
            path.write_text(yaml.safe_dump(raw))
            started = time.perf_counter()
            code = cli(["train-agent", "--config", str(path), "--seed", str(seed), "--out", str(out),
                        "--no-progress-bar"])
        if code:
            raise SystemExit(f"error: training the build-{build} policy with seed {seed} failed (exit {code})")
        seconds[seed] = round(time.perf_counter() - started, 1)
    return seconds


def baselines(run_full: bool) -> tuple[list[dict], dict]:
    """Random (run here) and full-data runs (committed, unless ``run_full``), and how random compares with the
    committed runs of the same seeds."""
    base = bench_config(HEADLINE_CONFIGS["mini"])
    methods = ["random"] + (["full"] if run_full else [])
    cfg = dataclasses.replace(base, methods=methods, out=str(OUT / "baselines"), policy_path=None)
    runs = [r for r in run_bench(cfg)["runs"] if r["method"] in methods]
    committed = json.loads((RESULTS / "headline.json").read_text())["runs"]["mini"]
    old = {(r["method"], r["seed"]): r["accuracy"] for r in committed if r["method"] in BASELINES}
    gaps = [abs(r["accuracy"] - old[("random", r["seed"])]) for r in runs if r["method"] == "random"]
    check = {"random_max_abs_gap": max(gaps), "reproduced": max(gaps) < 1e-9}
    if not run_full:
        if not check["reproduced"]:
            raise SystemExit(f"error: random accuracies differ from the committed headline's by up to {max(gaps):.4f}: "
                             "fine-tuning on this machine does not reproduce them, so its full-data runs do not pair "
                             "with runs made here; rerun with --run-full")
        runs += [r for r in committed if r["method"] == "full" and r["seed"] in base.seeds]
    return runs, check


def build_runs(build: int, proxy: str, methods: list[str]) -> dict:
    base = bench_config(HEADLINE_CONFIGS["mini"])
    cfg = dataclasses.replace(base, methods=methods, proxy=proxy, out=str(OUT / f"build-{build}" / "bench"),
                              policy_path=str(OUT / f"build-{build}" / "policies" / "policy-s{seed}.zip"))
    return run_bench(cfg)


def by_seed(runs: list[dict], method: str) -> dict[int, float]:
    return {r["seed"]: r["accuracy"] for r in runs if r["method"] == method}


def cell(x: float, digits: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def pool(build_runs: dict[int, list[dict]], base_runs: list[dict], methods: list[str]) -> dict:
    """Each method's accuracy over every (build, seed) run, against the baselines (one run per seed, paired with
    that seed on every build) and the other methods (paired by build and seed); ``p_build_means`` pairs the
    per-build means instead, so it counts builds, not runs."""
    pooled = {}
    for m in methods:
        mine = [(b, s, a) for b, runs in build_runs.items() for s, a in by_seed(runs, m).items()]
        pooled[m] = {"mean": float(np.mean([a for _, _, a in mine])), "pairs": len(mine)}
        for other in [*BASELINES, *[x for x in methods if x != m]]:
            ref = {(b, s): a for b, runs in build_runs.items()
                   for s, a in by_seed(base_runs if other in BASELINES else runs, other).items()}
            paired = [(b, a, ref[b, s]) for b, s, a in mine if (b, s) in ref]
            diff, p = paired_test([a for _, a, _ in paired], [r for _, _, r in paired])
            means = [(np.mean([a for bb, a, _ in paired if bb == b]), np.mean([r for bb, _, r in paired if bb == b]))
                     for b in build_runs if any(bb == b for bb, _, _ in paired)]
            _, p_builds = paired_test([x for x, _ in means], [y for _, y in means])
            pooled[m][f"vs_{other}"] = {"diff": diff, "p_pairs": p, "p_build_means": p_builds}
    return pooled


def committed_builds(wanted: list[int], methods: list[str]) -> tuple[list[dict], dict, dict]:
    """The committed runs, reassembled: the default build's are the headline's `mini` runs (the same benchmark and
    policies on the same build; refused unless that build is the shipped one), the other builds' and the
    baselines' come from builds.json."""
    saved = json.loads((RESULTS / "builds.json").read_text())
    headline = json.loads((RESULTS / "headline.json").read_text())
    shipped = weights_digest(MINI_NAME)
    if headline["proxy_digests"]["mini"] != shipped:
        raise SystemExit(f"error: the committed headline's mini runs are of build {headline['proxy_digests']['mini']}, "
                         f"not the shipped {shipped}; run the default build here instead of --reuse-committed")
    builds = {}
    for b in wanted:
        if b == MiniConfig().seed:
            builds[b] = {"proxy": MINI_NAME, "digest": shipped, "policy_train_seconds": {},
                         "source": "headline.json (runs.mini)",
                         "runs": [{k: v for k, v in r.items() if k != "ids"} for r in headline["runs"]["mini"]
                                  if r["method"] in methods]}
        elif str(b) in saved["builds"]:
            builds[b] = {**saved["builds"][str(b)], "source": "builds.json"}
        else:
            raise SystemExit(f"error: build {b} has no committed runs; run it without --reuse-committed")
    return saved["baselines"], saved["baseline_check"], builds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, nargs="+", default=[0, 1, 2], help="MiniConfig seeds (0: the default)")
    parser.add_argument("--methods", nargs="+", default=["policy", "less"], help="methods that read the proxy")
    parser.add_argument("--run-full", action="store_true", help="rerun full data here instead of reusing it")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse-committed", action="store_true", help="run nothing: take the default build's runs "
                        "from the committed headline.json (which must be of the shipped mini) and the other builds' "
                        "and the baselines' runs from the committed builds.json, and write the report again")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before, started = load_average(), time.perf_counter()
    seeds = bench_config(HEADLINE_CONFIGS["mini"]).seeds
    if args.reuse_committed:
        base_runs, check, builds = committed_builds(args.builds, args.methods)
    else:
        base_runs, check = baselines(args.run_full)
        builds = {}
    for b in [] if args.reuse_committed else args.builds:
        proxy = proxy_of(b)
        train_s = train_policies(b, proxy, seeds)
        result = build_runs(b, proxy, args.methods)
        builds[b] = {"proxy": proxy if b == MiniConfig().seed else f"mini seed {b}",
                     "digest": weights_digest(proxy), "policy_train_seconds": train_s,
                     "runs": [{k: v for k, v in r.items() if k != "ids"} for r in result["runs"]]}

    def table_row(label: str, runs: list[dict], method: str) -> dict:
        acc, ref = by_seed(runs, method), {m: by_seed(base_runs, m) for m in BASELINES}
        common = sorted(acc)
        row = {"label": label, "method": method, "mean": float(np.mean([acc[s] for s in common])),
               "std": float(np.std([acc[s] for s in common], ddof=1)), "seeds": len(common),
               "useful_share": float(np.mean([r["useful_share"] for r in runs if r["method"] == method]))}
        for m in BASELINES:
            row[f"vs_{m}"], row[f"p_{m}"] = paired_test([acc[s] for s in common], [ref[m][s] for s in common])
        return row

    rows = [table_row("-", base_runs, m) for m in BASELINES]
    for b, info in builds.items():
        rows += [table_row(f"{b} ({info['digest']})", info["runs"], m) for m in args.methods]
    pooled = pool({b: info["runs"] for b, info in builds.items()}, base_runs, args.methods)
    report = {"command": command_line(__file__, argv), "environment": environment(args.threads),
              "baseline_check": check, "baselines": base_runs, "builds": builds, "rows": rows, "pooled": pooled,
              "seconds_this_call": round(time.perf_counter() - started, 1),
              "load_note": load_note(before, load_average())}
    lines = ["# The headline on several builds of `mini`", "",
             f"Command: `{report['command']}`. {report['environment']}, no GPU. {report['load_note']}", "",
             f"Setup: the headline's `mini` benchmark (`{HEADLINE_CONFIGS['mini'].relative_to(ROOT)}`: SmolLM2 "
             "fine-tuned with LoRA on "
             "5% of the 1,000-example suite, scored on 200 held-out target problems, seeds "
             f"{seeds}) with `mini` pretrained from each build seed (`MiniConfig.seed`), and the default policy "
             "trained for each seed on that build's features. Random and full data read no proxy: one set of runs "
             "pairs with every build. "
             + ("Random was rerun here and matched the committed headline's runs exactly, so its full-data runs are "
                "reused." if check["reproduced"] and not args.run_full else "Random and full data ran here.")
             + (" This report reassembles committed runs (nothing was rerun): the default build, the `mini` that "
                f"ships with selectgym ({weights_digest(MINI_NAME)}), is the headline's `mini` benchmark, the same "
                "benchmark and policies on the same build; the other builds and the baselines are the earlier "
                "builds run's." if args.reuse_committed else ""), "",
             "| build (digest) | method | accuracy (mean +- std) | vs random (p) | vs full (p) | useful share |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['method']} | {r['mean']:.3f} +- {r['std']:.3f} | "
                     f"{cell(r['vs_random'])} ({cell(r['p_random'], 2)}) | {cell(r['vs_full'])} "
                     f"({cell(r['p_full'], 2)}) | {r['useful_share']:.2f} |")
    lines += ["", f"Pooled over {len(builds)} builds x {len(seeds)} seeds (paired by build and seed; `p (builds)` "
              "pairs the per-build means, so it counts builds, not runs):", "",
              "| method | accuracy | against | difference | p (pairs) | p (builds) |", "|---|---:|---|---:|---:|---:|"]
    for m, d in pooled.items():
        for other, v in d.items():
            if other.startswith("vs_"):
                lines.append(f"| {m} | {d['mean']:.3f} | {other[3:]} | {v['diff']:+.3f} | {cell(v['p_pairs'], 3)} | "
                             f"{cell(v['p_build_means'], 2)} |")
    lines += ["", "Policy training seconds per build (new policies only): "
              + "; ".join(f"build {b}: {sum(i['policy_train_seconds'].values()):.0f} s" for b, i in builds.items()
                          if i["policy_train_seconds"]) + "."]
    write_results(RESULTS / "builds", report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
