"""Which task families can `mini` learn from 30 clean examples? The simulator a grounded reward needs.

``mini_regime`` found that on the fidelity pools' targets no learning rate or budget makes ``mini`` beat its
untrained accuracy, so a reward that fine-tunes ``mini`` pays for doing no harm. A grounded reward needs a target
that learns from a few dozen good examples. This benchmark asks, family by family (the 16 reasoning-gym families
``mini`` was pretrained on, the suite's two default targets among them), whether ``mini``
fine-tuned on 30 clean examples of that family (the fidelity target's trainer: 3 epochs, batches of 8, AdamW,
linear decay; lr 1e-3 and 3e-4; 3 seeds) answers more of 100 held-out problems of it than untrained. A family
where it does is one a simulator pool could aim at.

Run: ``.venv/bin/python -m benchmarks.accuracy.mini_families`` (about 10 minutes on 2 cores; resumes after a kill,
runs in ``runs/mini-families``). Writes ``benchmarks/results/mini_families.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from benchmarks.accuracy.reward_fidelity import MINI_FT
from benchmarks.envelope import RESULTS, ROOT, command_line, environment, load_average, load_note, write_results
from benchmarks.harness import HELD_OUT_FAMILIES, TRAIN_FAMILIES
from selectgym.bench.harness import finetune_and_score
from selectgym.data.io import load_pool
from selectgym.data.suite import DEFAULT_TARGET, SuiteConfig, make_suite
from selectgym.finetune.config import FinetuneConfig
from selectgym.proxies.models import weights_digest
from selectgym.utils import write_json

OUT = ROOT / "runs" / "mini-families"
LRS = (1e-3, 3e-4)
SEEDS = (0, 1, 2)
N_TRAIN = 30
#: family -> its generator settings: mini's 16 families (the suite's two targets among them, with its settings)
FAMILIES = {**TRAIN_FAMILIES, **HELD_OUT_FAMILIES}
assert all(FAMILIES[f] == kw for f, kw in DEFAULT_TARGET.items())


def family_pool(family: str):
    """120 clean examples of one family to train on and 100 held-out problems of it to score (cached). The suite
    needs an off-target family, which a pool of target share 1 never draws from; it must not be the family itself
    (a family on both sides gets no training examples)."""
    folder = OUT / family
    if not (folder / "sft.jsonl").exists() or not (folder / "sft.jsonl").stat().st_size:
        other = "count_bits" if family != "count_bits" else "gcd"
        make_suite(folder, SuiteConfig(seed=0, size=120, validation_size=100, target_share=1.0, defect_rate=0.0,
                                       target_tasks={family: FAMILIES[family]}, off_target_tasks={other: {}}))
    return folder


def untrained_accuracy(folder) -> float:
    from selectgym.finetune.evaluate import evaluate
    from selectgym.proxies.models import load_model

    path = folder / "untrained.json"
    if not path.exists():
        model, tokenizer = load_model("mini")
        model.eval()
        with torch.no_grad():
            write_json(path, evaluate(model, tokenizer, load_pool(folder / "validation.jsonl")))
    return float(json.loads(path.read_text())["accuracy"])


def run(label: str) -> dict[str, Any]:
    folder = family_pool(label)
    pool, score = load_pool(folder / "sft.jsonl"), load_pool(folder / "validation.jsonl")
    path = folder / "runs.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for lr in LRS:
        for seed in SEEDS:
            key = f"{lr:g}/{seed}"
            if key in done:
                continue
            rows = np.random.default_rng(seed).choice(len(pool), N_TRAIN, replace=False)
            cfg = FinetuneConfig(method="sft", model="mini", seed=seed, output_dir=str(folder / "ft"),
                                 **{**MINI_FT, "lr": lr})
            done[key] = finetune_and_score(cfg, pool, [pool[int(r)].id for r in rows], score)["accuracy"]
            write_json(path, done)
    base = untrained_accuracy(folder)
    row: dict[str, Any] = {"untrained": round(base, 4), "scored": len(score)}
    for lr in LRS:
        acc = np.array([done[f"{lr:g}/{s}"] for s in SEEDS])
        row[f"{lr:g}"] = {"mean": round(float(acc.mean()), 4), "std": round(float(acc.std(ddof=1)), 4),
                          "gain": round(float(acc.mean() - base), 4), "runs": [round(float(a), 4) for a in acc]}
    # learnable: at some rate the mean gain is at least 0.02 and more than two seed stds (a small, steady gain)
    row["learns"] = any(row[f"{lr:g}"]["gain"] >= 0.02 and row[f"{lr:g}"]["gain"] > 2 * row[f"{lr:g}"]["std"]
                        for lr in LRS)
    print(f"{label}: untrained {base:.3f}, " + ", ".join(f"lr {lr:g} {row[f'{lr:g}']['gain']:+.3f}" for lr in LRS),
          flush=True)
    return row


def markdown(rep: dict[str, Any]) -> str:
    lines = ["# Which families can `mini` learn from 30 clean examples?", "",
             f"Command: `{rep['command']}`. {rep['environment']}. {rep['load_note']} `mini` weights "
             f"{rep['mini_digest']}.", "",
             f"`mini` fine-tuned on {N_TRAIN} clean examples of one family (3 epochs, batches of 8, AdamW, linear "
             f"decay), {len(SEEDS)} seeds (draw and training), scored by the verifier on 100 held-out problems of "
             "the same family; gain over the untrained model. *learns*: a gain of at least 0.02 and more than two "
             "seed stds at some rate.", "",
             "| family | untrained | " + " | ".join(f"lr {lr:g}: mean +- std (gain)" for lr in LRS) + " | learns |",
             "|---|---:|" + "---:|" * len(LRS) + "---|"]
    for label, row in rep["families"].items():
        cells = [f"{row[f'{lr:g}']['mean']:.3f} +- {row[f'{lr:g}']['std']:.3f} ({row[f'{lr:g}']['gain']:+.3f})"
                 for lr in LRS]
        learns = "yes" if row["learns"] else ""
        lines.append(f"| {label} | {row['untrained']:.3f} | " + " | ".join(cells) + f" | {learns} |")
    learns = [label for label, row in rep["families"].items() if row["learns"]]
    lines += ["", "## What the numbers say", "",
              f"- {len(learns)} of {len(rep['families'])} families are learned by that test"
              + (f": {', '.join(learns)}." if learns else "."), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    before, started = load_average(), time.perf_counter()
    families = {label: run(label) for label in FAMILIES}
    rep = {"command": command_line(__file__, argv), "environment": environment(),
           "load_note": load_note(before, load_average()), "mini_digest": weights_digest("mini"),
           "train_examples": N_TRAIN, "seeds": list(SEEDS), "families": families,
           "seconds_this_call": round(time.perf_counter() - started, 1)}
    write_results(RESULTS / "mini_families", rep, markdown(rep))
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
