"""Selector quality on the built-in suite: how many clean, on-target examples each method picks.

Two regimes, both on features from the real pipeline (tiny proxy by default):

* clean: for each selector at each budget, the share of picks that are clean and on-target
  (``meta.useful``) next to random's, mean +- std over seeds;
* noisy reward (GradAlign's first regime): a seeded half of the verifiable problems get coin-flip
  rewards; we report the share of picks that are corrupted (the published reproduction: GradAlign
  27.3%, AccGreedy 86.7%, random 50%).

Run: ``.venv/bin/python -m benchmarks.quality.selector_quality [--size 500 --feature-seeds 0 1 2]`` from the
checkout root (about a minute with ``--model mini --size 300 --validation-size 48 --feature-seeds 0 1 2`` on 2 CPU
cores); features are kept in ``--work``. Writes ``benchmarks/results/selector_quality.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.envelope import command_line, write_results
from selectgym.data import load_pool
from selectgym.data.suite import SuiteConfig, make_suite
from selectgym.errors import SelectgymError
from selectgym.proxies.models import weights_digest
from selectgym.proxies.pipeline import FeatureConfig, compute_features, load_features
from selectgym.proxies.proxy import load_proxy
from selectgym.proxies.rewards import CompletionReward, VerifierReward
from selectgym.selectors import get_selector
from selectgym.utils import derive_seed

CLEAN_METHODS = {  # label -> (selector name, options, which feature run)
    "random": ("random", {}, "sft"),
    "less": ("less", {}, "sft"),
    "less (sgd)": ("less", {"gradient_type": "sgd"}, "sft"),
    "nice": ("nice", {}, "sft"),
    "dpo_gap": ("dpo_gap", {}, "pref"),
    "gradalign sim": ("gradalign", {"mode": "sim"}, "grpo"),
    "gradalign align": ("gradalign", {"mode": "align"}, "grpo"),
    "learnalign": ("gradalign", {"mode": "learnalign"}, "grpo"),
    "accgreedy": ("gradalign", {"mode": "accgreedy"}, "grpo"),
}
NOISY_METHODS = {
    "gradalign sim": {"mode": "sim"},
    "gradalign dot": {"mode": "dot"},
    "gradalign align": {"mode": "align"},
    "learnalign": {"mode": "learnalign"},
    "accgreedy": {"mode": "accgreedy"},
    "random (rand)": {"mode": "rand"},
}


@dataclass
class Args:
    size: int = 500
    """examples in the suite's pool"""
    validation_size: int = 32
    feature_seeds: list[int] = field(default_factory=lambda: [0])
    """proxy/projection seeds: features are computed once per seed (the dominant cost)"""
    selection_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budgets: list[float] = field(default_factory=lambda: [0.05, 0.1])
    model: str = "tiny"
    dim: int = 1024
    k: int = 4
    max_new_tokens: int = 16
    warmup_steps: int = 20
    work: str = "runs/selector_quality"
    out: str = "benchmarks/results/selector_quality"


class CoinFlipReward(CompletionReward):
    """The verifier's reward, except that problems in ``corrupted`` get a seeded fair coin flip."""

    def __init__(self, corrupted: set[str], seed: int) -> None:
        self.corrupted, self.clean = corrupted, VerifierReward()
        self.rng = np.random.default_rng(seed)

    def _score(self, examples, completions):
        honest = self.clean(examples, completions)
        flips = self.rng.integers(0, 2, len(examples)).astype(np.float32)
        return [float(f) if ex.id in self.corrupted else float(h) for ex, h, f in zip(examples, honest, flips,
                                                                                       strict=True)]


def features(args: Args, suite: Path, seed: int) -> dict[str, tuple]:
    """The three feature runs the methods need: SFT pool (+NICE), preference pool, verifiable pool (+GRPO)."""
    common = dict(model=args.model, proj_dim=args.dim, warmup_steps=args.warmup_steps, rollouts=args.k,
                  max_new_tokens=args.max_new_tokens, seed=seed, device="cpu")
    runs = {"sft": ("sft.jsonl", ["grad", "grad_adam", "nice"], "adam"),
            "pref": ("preference.jsonl", ["dpo_gap"], "sgd"),
            "grpo": ("verifiable.jsonl", ["grpo"], "sgd")}
    out = {}
    for name, (pool, feats, gtype) in runs.items():
        cfg = FeatureConfig(features=feats, gradient_type=gtype, **common)
        folder = Path(args.work) / f"features-{name}-{seed}"
        val = suite / "validation.jsonl" if name != "pref" else None
        compute_features(suite / pool, val, cfg, folder, progress=False)
        train, val_table, _ = load_features(folder)
        out[name] = (train, val_table)
    return out


def noisy_grpo(args: Args, suite: Path, seed: int, clean: tuple) -> tuple[tuple, set[str]]:
    """GRPO candidate features where a seeded half of the problems get coin-flip rewards.

    The trusted validation gradient is the clean run's; the candidates are re-rolled with the
    corrupted reward on the same warmed-up proxy.
    """
    from selectgym.proxies.gradients import grad_dim
    from selectgym.proxies.policy_grad import grpo_candidate_grads
    from selectgym.proxies.projection import make_projector
    from selectgym.proxies.proxy import restore_proxy
    from selectgym.proxies.rollouts import make_generator
    from selectgym.proxies.store import FeatureStore
    from selectgym.proxies.table import FeatureTable

    pool = load_pool(suite / "verifiable.jsonl")
    rng = np.random.default_rng(derive_seed(seed, "corrupt"))
    corrupted = set(rng.choice(pool.ids, size=len(pool) // 2, replace=False).tolist())
    store = FeatureStore.open(Path(args.work) / f"features-grpo-{seed}")
    cfg = FeatureConfig.from_dict(store.meta["config"])
    model, tokenizer = load_proxy(cfg)
    restore_proxy(model, store.load_proxy(), cfg.warmup_lr)
    model.eval()
    projector = make_projector(cfg.projection, grad_dim(model), cfg.proj_dim, seed=cfg.seed)
    grads, signal, pass_rate = grpo_candidate_grads(
        model, tokenizer, list(pool), make_generator("transformers", model=model, tokenizer=tokenizer),
        CoinFlipReward(corrupted, derive_seed(seed, "coins")), k=cfg.rollouts, std_normalise=cfg.std_normalise,
        temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, projector=projector,
        batch_size=cfg.batch_size, max_length=cfg.max_length, seed=derive_seed(seed, "noisy-grpo"))
    table = FeatureTable(pool.ids, {"grpo_grad": np.asarray(grads, np.float64), "grpo_signal": np.asarray(signal),
                                    "pass_rate": np.asarray(pass_rate, np.float64)})
    return (table, clean[1]), corrupted


def pick(selector, tables: tuple, budget: float, seed: int, errors: dict[str, str], label: str) -> list[str]:
    """The selected ids, or none (recorded in ``errors``) when the features cannot support the method."""
    try:
        return selector.select(*tables, budget, seed).ids
    except SelectgymError as err:
        errors[label] = str(err)
        return []


def share(ids: list[str], positive: set[str]) -> float:
    return sum(i in positive for i in ids) / len(ids) if ids else float("nan")


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def run(args: Args) -> dict:
    started = time.perf_counter()
    suite = Path(args.work) / "suite"
    make_suite(suite, SuiteConfig(seed=0, size=args.size, validation_size=args.validation_size))
    labels = load_pool(suite / "sft.jsonl")
    useful = {ex.id for ex in labels if ex.meta["useful"]}
    clean: dict = {m: {str(b): [] for b in args.budgets} for m in CLEAN_METHODS}
    noisy: dict = {m: {str(b): [] for b in args.budgets} for m in NOISY_METHODS}
    stats: dict = {}
    errors: dict[str, str] = {}
    for fseed in args.feature_seeds:
        feats = features(args, suite, fseed)
        grpo_train = feats["grpo"][0]
        stats[fseed] = {"grpo_signal_share": float(np.mean(grpo_train.get("grpo_signal") > 0)),
                        "pass_rate_mean": float(np.mean(grpo_train.get("pass_rate")))}
        noisy_feats, corrupted = noisy_grpo(args, suite, fseed, feats["grpo"])
        sig = noisy_feats[0].get("grpo_signal") > 0
        in_c = np.array([i in corrupted for i in noisy_feats[0].ids])
        stats[fseed].update(noisy_signal_share_corrupted=float(sig[in_c].mean()),
                            noisy_signal_share_clean=float(sig[~in_c].mean()))
        for budget in args.budgets:
            for sseed in args.selection_seeds:
                for label, (name, options, run_name) in CLEAN_METHODS.items():
                    picked = pick(get_selector(name, **options), feats[run_name], budget, sseed, errors, label)
                    clean[label][str(budget)].append(share(picked, useful))
                for label, options in NOISY_METHODS.items():
                    picked = pick(get_selector("gradalign", **options), noisy_feats, budget, sseed, errors,
                                  f"noisy {label}")
                    noisy[label][str(budget)].append(share(picked, corrupted))
    return {"args": asdict(args), "pool_useful_share": len(useful) / len(labels),
            "clean_on_target_share": {m: {b: mean_std(v) for b, v in d.items()} for m, d in clean.items()},
            "corrupted_share_noisy": {m: {b: mean_std(v) for b, v in d.items()} for m, d in noisy.items()},
            "feature_stats": stats, "errors": errors, "seconds": round(time.perf_counter() - started, 1)}


def markdown(result: dict, command: str) -> str:
    args = result["args"]
    budgets = [str(b) for b in args["budgets"]]
    lines = ["# Selector quality on the built-in suite", "", f"Command: `{command}`", "",
             f"Pool {args['size']} examples, {100 * result['pool_useful_share']:.1f}% clean and on-target; proxy "
             f"{args['model']} (weights digest {result.get('proxy_digest')}), feature seeds {args['feature_seeds']}, "
             f"selection seeds {args['selection_seeds']}; "
             f"{result['seconds']} s.", "", "## Clean and on-target share of the picks (higher is better)", "",
             "| method | " + " | ".join(f"budget {b}" for b in budgets) + " | vs random |",
             "|---|" + "---|" * (len(budgets) + 1)]
    rand = result["clean_on_target_share"]["random"]
    for method, per in result["clean_on_target_share"].items():
        cells = [f"{100 * per[b]['mean']:.1f} +- {100 * per[b]['std']:.1f}%" for b in budgets]
        ratio = " / ".join(f"{per[b]['mean'] / max(rand[b]['mean'], 1e-9):.2f}x" for b in budgets)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {ratio} |")
    lines += ["", "## Noisy rewards: corrupted share of the picks (lower is better; published: GradAlign 27.3%, "
              "AccGreedy 86.7%, random 50%)", "",
              "| method | " + " | ".join(f"budget {b}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for method, per in result["corrupted_share_noisy"].items():
        lines.append(f"| {method} | " + " | ".join(f"{100 * per[b]['mean']:.1f} +- {100 * per[b]['std']:.1f}%"
                                                    for b in budgets) + " |")
    for label, message in result["errors"].items():
        lines.append(f"\n{label}: no selection ({message})")
    lines += ["", "GRPO feature statistics per feature seed (share of problems whose rollouts got differing "
              "rewards, mean pass rate; in the noisy run, that share among corrupted and clean problems):", "",
              "```", json.dumps(result["feature_stats"], indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Args()
    for key, value in asdict(defaults).items():
        if isinstance(value, list):
            parser.add_argument(f"--{key.replace('_', '-')}", nargs="+", type=type(value[0]), default=value)
        else:
            parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = Args(**vars(parser.parse_args(argv)))
    result = run(args)
    result["command"] = command_line(__file__, argv)
    result["proxy_digest"] = weights_digest(args.model)
    text = markdown(result, result["command"])
    write_results(args.out, result, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
