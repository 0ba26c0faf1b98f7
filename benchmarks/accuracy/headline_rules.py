"""The headline's question at 10 seeds: does the default policy beat the best fixed rule on the same features?

The headline (``headline.py``, 5 seeds) ranks every selector; this asks a sharper question: in the headline's
setting (SmolLM2 fine-tuned on 5% of the 1,000-example suite, scored on the target half no feature aimed at,
features from ``mini``), do the shipped default policy, the same design trained on the grounded ``trained`` reward,
and that design observing the loss too (both from ``trained_policy.py``) beat each fixed rule on the same features
(LESS, LESS on SGD gradients, LESS-sgd minus the z-scored loss, NICE), paired over ``--seeds`` seeds, and are they
level with full data?

The rules and policies run here (a seed is the fine-tuning seed; every rule and policy picks the same ids whatever
the seed). Full data reads no proxy and is the slowest run (one epoch over the pool, about 500 s): its seeds that
the committed ``headline.json`` holds are taken from there (same pool, target half, trainer and seeds), and the
others run last, so a run cut short still pairs every selective method over all seeds. A killed run resumes.

Run: ``.venv/bin/python -m benchmarks.accuracy.headline_rules`` from the checkout root (about 90 minutes on 2
CPU cores), after ``benchmarks.accuracy.trained_policy`` (its policies). Writes
``benchmarks/results/headline_rules.{json,md}`` and adds the comparison to ``headline.json`` as ``vs_fixed_rules``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.accuracy import trained_policy
from benchmarks.envelope import (
    RESULTS,
    ROOT,
    command_line,
    environment,
    load_average,
    load_note,
    paired_test,
    read_json,
    replace_section,
    write_results,
)
from benchmarks.harness import HEADLINE_CONFIGS, bench_config, pick
from selectgym.agents.policy_file import policy_path
from selectgym.bench.config import changed_settings
from selectgym.bench.harness import Bench
from selectgym.proxies.models import weights_digest
from selectgym.utils import file_digest, write_json

OUT = ROOT / "runs" / "bench-headline-rules"
#: the section of ``headline.md`` this writes (``headline.py`` keeps it when it rewrites the file)
SECTION = "## Against the best fixed rule"
POLICIES = ("policy", "policy_trained", "policy_trained_loss_obs")
RULES = ("less", "less_sgd", "less_sgd_minus_loss", "nice")
#: the headline config's settings a full-data run depends on (it reads no proxy and no selector)
FULL_SETTINGS = ("suite_seed", "suite_size", "validation_size", "split_target", "target", "ft_lr", "ft_batch_size",
                 "full_epochs", "max_new_tokens", "objective")


def bench(out: Path = OUT) -> Bench:
    """The headline's benchmark (``bench_headline.yaml``) with its folder at ``out``; its pool, target halves,
    features (``mini``, the methods that need sft and verifiable features) and trainer."""
    cfg = dataclasses.replace(bench_config(HEADLINE_CONFIGS["mini"]), out=str(out), methods=["policy", "less", "nice"],
                              policy_path=str(policy_path("default")))
    return Bench(cfg, progress=False)


def committed_full(b: Bench, report: dict) -> dict[int, dict]:
    """The committed headline's full-data runs by seed (``report``: ``headline.json``), when its settings for them
    are this benchmark's."""
    saved = report.get("configs", {}).get("mini")
    if not saved or any(k in changed_settings(saved, b.cfg) for k in FULL_SETTINGS):
        return {}
    return {r["seed"]: {**r, "from": "headline.json"} for r in report["runs"]["mini"] if r["method"] == "full"}


def compare(acc: dict[str, dict[int, float]], a: str, b: str) -> dict:
    """``a`` minus ``b``, paired over the seeds both have; ``p`` is None with fewer than two."""
    seeds = sorted(set(acc[a]) & set(acc[b]))
    if len(seeds) < 2:
        return {"diff": float("nan"), "p": None, "seeds": len(seeds), "spread": float("nan")}
    diff, p = paired_test([acc[a][s] for s in seeds], [acc[b][s] for s in seeds])
    spread = float(np.std([acc[a][s] - acc[b][s] for s in seeds], ddof=1))
    return {"diff": round(float(diff), 4), "p": None if p != p else float(p), "seeds": len(seeds),
            "spread": round(spread, 4)}


def p_text(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.2g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="fine-tuning seeds (0 .. N-1)")
    parser.add_argument("--report-only", action="store_true", help="write the results from the runs saved so far")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    before, started = load_average(), time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    b = bench()
    b.pools()
    saved_path = OUT / "runs.json"
    runs: dict[str, dict] = read_json(saved_path).get("runs", {})
    paths = {"policy": policy_path("default"),
             **{name: trained_policy.train(reward, kwargs, 0, 8192, observe)[0]
                for name, reward, kwargs, observe in trained_policy.POLICIES if name != "policy_linear"}}
    headline = read_json(RESULTS / "headline")
    full = committed_full(b, headline)
    seeds = list(range(args.seeds))
    if not args.report_only:
        train, val = b.features(b._suite)
        all_ids = list(train.ids)
        for seed in seeds:
            for method in (*POLICIES, *RULES):
                key = f"{method}/{seed}"
                digest = file_digest(paths[method]) if method in paths else None
                if key in runs and runs[key].get("policy_digest") == digest:
                    continue  # a policy file replaced since (trained_policy retrained) picks again
                t0 = time.perf_counter()
                ids = [train.ids[r] for r in pick(method, train, val, 0.05, seed, paths)]
                runs[key] = {"method": method, "seed": seed, "policy_digest": digest,
                             "select_seconds": time.perf_counter() - t0,
                             **b.finetune(ids, seed, full=False), "ids": ids}
                write_json(saved_path, {"runs": runs})
                print(key, f"{runs[key]['accuracy']:.3f}", flush=True)
        for seed in seeds:  # last: the slowest runs, and those the committed headline holds are not rerun
            key = f"full/{seed}"
            if key not in runs and seed not in full:
                runs[key] = {"method": "full", "seed": seed, **b.finetune(all_ids, seed, full=True)}
                write_json(saved_path, {"runs": runs})
                print(key, f"{runs[key]['accuracy']:.3f}", flush=True)
    for seed, run in full.items():
        runs.setdefault(f"full/{seed}", {k: v for k, v in run.items() if k != "n"})

    acc: dict[str, dict[int, float]] = {}
    share: dict[str, list[float]] = {}
    for run in runs.values():
        acc.setdefault(run["method"], {})[run["seed"]] = run["accuracy"]
        share.setdefault(run["method"], []).append(run.get("useful_share", float("nan")))
    methods = [m for m in (*POLICIES, *RULES, "full") if m in acc]
    summary = {m: {"mean": round(float(np.mean(list(acc[m].values()))), 4),
                   "std": round(float(np.std(list(acc[m].values()), ddof=1)), 4) if len(acc[m]) > 1 else None,
                   "seeds": len(acc[m]), "useful_share": round(float(np.nanmean(share[m])), 3)} for m in methods}
    rules = [m for m in RULES if m in acc]
    best = max(rules, key=lambda m: summary[m]["mean"])
    best_vs_full = compare(acc, best, "full") if "full" in acc else None
    picked = {m: {frozenset(r["ids"]) for r in runs.values() if r["method"] == m and "ids" in r} for m in methods}
    same_sets = [(a, b) for i, a in enumerate(methods) for b in methods[i + 1:]
                 if len(picked[a]) == 1 and picked[a] == picked[b]]
    verdicts = {}
    for p in (p for p in POLICIES if p in acc):
        vs_best = compare(acc, p, best)
        verdicts[p] = {"best_fixed_rule": best, "vs_best_fixed_rule": vs_best, "p_vs_best_fixed_rule": vs_best["p"],
                       "vs_rules": {r: compare(acc, p, r) for r in rules}}
        if "full" in acc:
            vs_full = compare(acc, p, "full")
            verdicts[p].update({"vs_full": vs_full, "p_vs_full": vs_full["p"]})
    order_noise = {(a, b): compare(acc, a, b) for a, b in same_sets}
    less_committed = {r["seed"]: r["accuracy"] for r in headline.get("runs", {}).get("mini", [])
                      if r["method"] == "less"}
    reproduced = {s: (round(acc["less"][s], 4), round(a, 4)) for s, a in less_committed.items()
                  if s in acc.get("less", {})}
    report = {"command": command_line(__file__, argv), "environment": environment(args.threads),
              "proxy_digest": weights_digest("mini"), "policies": {k: str(Path(v).relative_to(ROOT)) for k, v in
                                                                   paths.items()},
              "summary": summary, "verdicts": verdicts,
              "best_fixed_rule_vs_full": best_vs_full, "less_reproduced": reproduced,
              "same_sets": {f"{a} vs {b}": d for (a, b), d in order_noise.items()},
              "full_from_headline": sorted(full), "runs": {k: {x: y for x, y in r.items() if x != "ids"}
                                                            for k, r in runs.items()},
              "load_note": load_note(before, load_average()), "seconds_this_call": round(time.perf_counter() - started)}

    names = {"policy": "policy (shipped default, `linear` reward)",
             "policy_trained": "policy (`trained` reward, `trained_policy.py`)",
             "policy_trained_loss_obs": "policy observing the loss too (`trained` reward)",
             "less": "LESS", "less_sgd": "LESS-sgd",
             "less_sgd_minus_loss": "LESS-sgd minus z-scored loss", "nice": "NICE", "full": "full data"}
    lines = ["# The default policy against the best fixed rule, in the headline's setting", "",
             f"Command: `{report['command']}`. {report['environment']}, no GPU. {report['load_note']}", "",
             "SmolLM2-135M-Instruct fine-tuned with LoRA on 5% of the 1,000-example suite (12 steps, batch 8, "
             "lr 1e-3), "
             "scored on the 200 target problems no feature aimed at; features from `mini` (weights "
             f"{report['proxy_digest']}). Every selection picks the same ids at every seed; the seed is the "
             "fine-tuning seed, and the tests are paired over seeds. `useful share`: clean and on-target picks "
             "(ground truth, read for measuring only)."
             + (f" Full data's seeds {', '.join(map(str, sorted(full)))} are the committed headline's runs."
                if full else ""), "",
             "| method | accuracy (mean +- std) | seeds | useful share |", "|---|---:|---:|---:|"]
    for m in methods:
        s = summary[m]
        std = "n/a" if s["std"] is None else f"{s['std']:.3f}"
        lines.append(f"| {names[m]} | {s['mean']:.3f} +- {std} | {s['seeds']} | {s['useful_share']:.2f} |")
    lines += ["", f"Best fixed rule: {names[best]} ({summary[best]['mean']:.3f})"
              + (f"; against full data {best_vs_full['diff']:+.3f} (paired p = {p_text(best_vs_full['p'])}, "
                 f"{best_vs_full['seeds']} seeds)" if best_vs_full else "") + ".", ""]
    for p, v in verdicts.items():
        d = v["vs_best_fixed_rule"]
        line = f"- {names[p]}: {d['diff']:+.3f} against {names[best]} (paired p = {p_text(d['p'])}, {d['seeds']} seeds)"
        if "vs_full" in v:
            f = v["vs_full"]
            line += f"; {f['diff']:+.3f} against full data (paired p = {p_text(f['p'])}, {f['seeds']} seeds)"
        lines.append(line + ".")
    for (a, b), d in order_noise.items():
        lines += ["", f"{names[a]} and {names[b]} pick the same examples, in another order: their accuracy differs "
                  f"by {d['diff']:+.3f} (paired p = {p_text(d['p'])}), a per-seed spread of {d['spread']:.3f} that "
                  "comes from the order the fine-tuning sees them in alone; the differences between methods above "
                  "carry that noise too."]
    if reproduced:
        same = sum(a == b for a, b in reproduced.values())
        lines += ["", f"LESS reproduces the committed headline's accuracy on {same} of its {len(reproduced)} seeds."]
    write_results(RESULTS / "headline_rules", report, "\n".join(lines) + "\n")
    section = "\n".join([SECTION, "", f"From `{report['command']}` (`headline_rules.md`), {args.seeds} seeds:", "",
                          *lines[lines.index("| method | accuracy (mean +- std) | seeds | useful share |"):]])
    write_results(RESULTS / "headline", {"vs_fixed_rules": {"command": report["command"], "summary": summary,
                                                            **verdicts.get("policy", {}),
                                                            **{p: verdicts.get(p) for p in POLICIES[1:]}}},
                  replace_section(RESULTS / "headline.md", SECTION, section + "\n"), merge=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
