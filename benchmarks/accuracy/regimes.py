"""Each selector in its own regime: the GRPO and DPO benchmarks (``selectgym bench --objective grpo|dpo``).

NICE and GradAlign pick data for reinforcement learning and the DPO gap picks preference pairs, so judging them
by SFT says little. Here the shipped ``mini`` is proxy and target: with ``grpo`` it trains with TRL's
GRPOTrainer on each method's picks of the verifiable pool (rewarded by the pool's verifier), with ``dpo`` with
DPOTrainer on its picks of the preference pool; every selector's features come from that pool. Scores are greedy
verifier accuracy on the target half no selector aligned with, 5 seeds, paired tests against random and full
data. Configs: ``benchmarks/accuracy/bench_grpo.yaml`` and ``bench_dpo.yaml``.

Run: ``.venv/bin/python -m benchmarks.accuracy.regimes [--only grpo|dpo]`` (each about 5-10 minutes on 2 cores; a
killed run resumes in ``runs/bench-grpo`` / ``runs/bench-dpo``). Writes ``benchmarks/results/{grpo,dpo}.{json,md}``;
each file's "What it says" is written by hand and kept across reruns.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.envelope import (
    RESULTS,
    ROOT,
    command_line,
    environment,
    load_average,
    load_note,
    replace_section,
    section_of,
    write_markdown,
    write_results,
)
from benchmarks.harness import bench_config
from selectgym.bench.harness import run_bench
from selectgym.bench.report import markdown_table
from selectgym.proxies.models import weights_digest

HERE = Path(__file__).resolve().parent
CONFIGS = {"grpo": HERE / "bench_grpo.yaml", "dpo": HERE / "bench_dpo.yaml"}
READING = "## What it says"


def best(rows: list[dict]) -> dict:
    """The selective method with the highest mean accuracy at each budget."""
    out = {}
    for r in rows:
        if r["method"] == "full":
            continue
        key = str(r["budget"])
        if key not in out or r["mean"] > out[key]["mean"]:
            out[key] = {"method": r["method"], "mean": r["mean"]}
    return out


def run(objective: str) -> None:
    cfg = bench_config(CONFIGS[objective])
    before, started = load_average(), time.perf_counter()
    result = run_bench(cfg)
    stem = RESULTS / objective
    report = {"command": command_line(__file__, ["--only", objective]), "environment": environment(),
              "config": asdict(cfg),
              "proxy_digest": weights_digest(cfg.proxy), "target": cfg.target, "objective": objective,
              "summary": result["summary"], "runs": result["runs"], "failures": result["failures"],
              "best_by_budget": best(result["summary"]), "seconds_this_call": round(time.perf_counter() - started, 1),
              "load_note": load_note(before, load_average())}
    reading = section_of(stem.with_suffix(".md"), READING) if stem.with_suffix(".md").exists() else ""
    steps = f"{cfg.ft_max_steps} steps" if cfg.ft_max_steps > 0 else f"{cfg.ft_epochs} epochs"
    lines = [f"# The {objective.upper()} regime", "",
             f"Command: `{report['command']}`. {report['environment']}, no GPU. {report['load_note']}", "",
             f"Setup (`{CONFIGS[objective].relative_to(ROOT)}`): proxy and target the shipped `mini` (digest "
             f"{report['proxy_digest']}), objective `{objective}` ({'GRPOTrainer, groups of ' + str(cfg.rollouts) + ' completions rewarded by the verifier' if objective == 'grpo' else 'DPOTrainer'}; "  # noqa: E501
             f"LoRA, lr {cfg.ft_lr}, batch {cfg.ft_batch_size}, {steps} per selection, full data {cfg.full_epochs} "
             f"epoch), suite of {cfg.suite_size} examples, scored by greedy verifier accuracy on the half of "
             f"{cfg.validation_size} target problems no selector aligned with; seeds {cfg.seeds}. `select s` "
             "includes the features a method reads; `train s` is one fine-tuning run.", "",
             markdown_table(result["summary"]).strip(), ""]
    for f in result["failures"]:
        lines.append(f"- {f['method']} failed: {f.get('error', '')}")
    lines.append("")
    write_results(stem, report, "\n".join(lines))
    if reading:  # the hand-written reading of an earlier run stays until it is rewritten
        write_markdown(stem.with_suffix(".md"), replace_section(stem.with_suffix(".md"), READING, reading.lstrip("\n")))
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CONFIGS), default=None, help="run one regime")
    args = parser.parse_args(argv)
    for objective in [args.only] if args.only else list(CONFIGS):
        run(objective)
    return 0


if __name__ == "__main__":
    sys.exit(main())
