"""Reward fidelity on a pool whose target `mini` can learn: does a grounded reward track help once there is help?

``reward_fidelity`` measured every env reward on two pools whose targets ``mini`` does not learn from 5% of the
pool (``mini_regime.md``): a selection's value there is how little harm it does. ``mini_families.md`` found the two
families ``mini`` does learn from 30 clean examples, ``count_bits`` and ``spell_backward``. This runs the same study
(``reward_fidelity``'s selections, rewards, references and ``mini`` target, two training seeds) on a pool aiming at
those two (``reward_fidelity.EXTRA_POOLS["learnable"]``: the other off-target families of its ``heldout`` pool, 35%
target share, 30% defects) and reports each reward's rho with ``mini``'s accuracy beside the noise ceiling.

Run: ``.venv/bin/python -m benchmarks.accuracy.fidelity_learnable`` (about 15 minutes on 2 cores; resumes after a
kill, runs in ``runs/reward-fidelity/learnable``). Writes ``benchmarks/results/fidelity_learnable.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from benchmarks.accuracy.reward_fidelity import OUT, accuracy, one_seed_rho, rho_ci, run_pool, untrained
from benchmarks.envelope import RESULTS, command_line, environment, load_average, load_note, write_results
from selectgym.proxies.models import weights_digest
from selectgym.utils import write_json

POOL = "learnable"


def cross_third(keys: list[str], sels: dict) -> dict[str, float]:
    """Each selection's seed-0 ``mini`` target (the same seeded training as its recorded score-third run) scored on
    the **reward** third instead (cached): how far two thirds of the target set agree on the same training, a noise
    that a reward scoring other problems than the scored ones meets and the seed-to-seed ceiling does not count."""
    path = OUT / POOL / "cross-third.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for key in keys:
        if key not in done:
            done[key] = accuracy(OUT / POOL, sels[key]["ids"], "mini", 0, third="reward")["accuracy"]
            write_json(path, done)
    return done


def summary() -> dict[str, Any]:
    """rho of every reward and reference with the mean of the two seeds' accuracy, the noise ceiling, and where the
    untrained model stands."""
    sels = {s["name"]: s for s in json.loads((OUT / POOL / "selections.json").read_text())}
    recs = json.loads((OUT / POOL / "runs-mini.json").read_text())
    keys = list(recs)
    acc = np.array([np.mean([a["accuracy"] for a in recs[s]["accuracy"].values()]) for s in keys])
    ceiling = float(spearmanr([recs[s]["accuracy"]["0"]["accuracy"] for s in keys],
                              [recs[s]["accuracy"]["1"]["accuracy"] for s in keys])[0])
    rewards = {r: {**rho_ci(np.array([recs[s]["rewards"][r] for s in keys]), acc),
                   "rho_one_seed": one_seed_rho(np.array([recs[s]["rewards"][r] for s in keys]), keys, keys, recs)}
               for r in recs[keys[0]]["rewards"]}
    other = cross_third(keys, sels)
    seed0 = [recs[s]["accuracy"]["0"]["accuracy"] for s in keys]
    agreement = round(float(spearmanr([other[s] for s in keys], seed0)[0]), 3)
    refs = {f: round(float(spearmanr([recs[s]["references"][f] for s in keys], acc)[0]), 3)
            for f in recs[keys[0]]["references"]}
    base = untrained(OUT / POOL, "mini")
    kinds = {k: round(float(np.mean([acc[i] for i, s in enumerate(keys) if sels[s]["kind"] == k])), 4)
             for k in ("random", "method", "mix")}
    return {"selections": len(keys), "noise_ceiling": round(ceiling, 3), "reward_third_agreement": agreement,
            "noise_ceiling_two_seed_mean": round(float(np.sqrt(2 * ceiling / (1 + ceiling))), 3) if ceiling > 0
            else None,
            "untrained_accuracy": round(base, 4), "above_untrained": int((acc > base).sum()),
            "accuracy_range": [round(float(acc.min()), 4), round(float(acc.max()), 4)], "accuracy_by_kind": kinds,
            "rewards": rewards, "references": refs,
            "accuracy": {s: round(float(a), 4) for s, a in zip(keys, acc, strict=True)}}


def markdown(rep: dict[str, Any]) -> str:
    r = rep["mini"]
    lines = ["# Reward fidelity on a pool whose target `mini` can learn", "",
             f"Command: `{rep['command']}`. {rep['environment']}, no GPU. {rep['load_note']} Proxy and target `mini` "
             f"(weights {rep['proxy_digest']}), selections of 5%.", "",
             "The `learnable` pool aims at `count_bits` and `spell_backward`, the families `mini` learns from 30 "
             f"clean examples (`mini_families.md`). {r['selections']} selections (random draws, every method's "
             "top picks, label-built mixes), each trained twice; accuracy on the score third of the target set, "
             "which no feature or reward aimed at. Columns as in `reward_fidelity.md`.", "",
             f"Seed-to-seed rho r = {r['noise_ceiling']:+.2f} (ceiling for the two-seed mean "
             f"{r['noise_ceiling_two_seed_mean'] or float('nan'):.2f}). Accuracy from {r['accuracy_range'][0]:.3f} to "
             f"{r['accuracy_range'][1]:.3f}; untrained, `mini` scores {r['untrained_accuracy']:.3f}, and "
             f"{r['above_untrained']} of the {r['selections']} selections beat that. Mean accuracy by kind: "
             + ", ".join(f"{k} {v:.3f}" for k, v in r["accuracy_by_kind"].items()) + ".", "",
             f"The same seed-0 training, scored on the reward third instead of the score third, agrees with rho "
             f"{r['reward_third_agreement']:+.2f}. A reward that scores the reward third, as `trained` does, meets "
             "that problem-sampling noise on top of the training noise the ceiling counts.", "",
             "| reward | rho | 95% interval | one seed |", "|---|---:|---|---:|"]
    for name, v in sorted(r["rewards"].items(), key=lambda kv: -kv[1]["rho"]):
        lines.append(f"| `{name}` | {v['rho']:+.2f} | [{v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}] | "
                     f"{v['rho_one_seed']:+.2f} |")
    lines += ["", "| reference (mean over the selection) | rho |", "|---|---:|"]
    lines += [f"| {f} | {v:+.2f} |" for f, v in sorted(r["references"].items(), key=lambda kv: -kv[1])]
    best = max(r["rewards"], key=lambda k: r["rewards"][k]["rho"])
    lines += ["", "## What the numbers say", "",
              f"- The best reward here is `{best}`, rho {r['rewards'][best]['rho']:+.2f} against a ceiling of "
              f"{r['noise_ceiling_two_seed_mean'] or float('nan'):.2f}; on the suite and the other pool "
              "(`reward_fidelity.md`) no reward passed +0.58.",
              f"- {r['above_untrained']} of {r['selections']} selections beat the untrained model.",
              f"- Two thirds of the target set rank the same models with rho {r['reward_third_agreement']:+.2f}, "
              f"against {r['noise_ceiling']:+.2f} between two training seeds on one third: the noise ceiling counts "
              "only training noise, and the problems sampled into each third are a second noise a reward meets.",
              ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=24, help="random draws")
    args = parser.parse_args(argv)
    before, started = load_average(), time.perf_counter()
    run_pool(POOL, "mini", 0, 0, args.random)
    rep = {"command": command_line(__file__, argv), "environment": environment(),
           "proxy_digest": weights_digest("mini"), "mini": summary(),
           "load_note": load_note(before, load_average()), "seconds_this_call": round(time.perf_counter() - started)}
    write_results(RESULTS / "fidelity_learnable", rep, markdown(rep))
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
