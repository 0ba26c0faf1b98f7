"""Reward fidelity: does an env reward's return rank selections the way the target's accuracy after training does?

An agent learns exactly what its return measures. This benchmark takes many 5% selections of two pools (the
built-in suite, and a pool of other families, ``FIDELITY_FAMILIES`` as targets), spanning the whole
quality range: random draws, the top picks of every selector and fixed rule, and controlled mixes built from the
ground-truth labels (defect share, off-target share, balance between the target's subtasks; the labels build
selections here, never a reward). For each selection it records

- the accuracy of the target trained on it (``mini``, two training seeds; ``--target smollm2`` adds SmolLM2 runs
  on a subset), scored with the verifier on the **score** third of the target set, which no feature and no reward
  aimed at;
- the return of an episode that takes that selection, for every env reward (``linear`` as the default policy
  trains on it, ``linear`` on Adam gradients, ``proxy``, ``learned`` with the transfer benchmark's weights, and
  ``trained``, the terminal reward that fine-tunes ``mini`` on the selection and scores the **reward** third,
  by accuracy or by the answers' loss, once or averaged over several training runs: ``trained_x3``,
  ``trained_loss_x4``);
  the features aim at the **observe** third;
- single features of the selection as reference lines (mean LESS score, mean LESS-sgd score, mean loss, mean
  length, useful share, balance between the target's subtasks).

The report gives Spearman's rho of each with the accuracy (the mean of the two seeds), a bootstrap 95% interval,
and the noise ceiling: rho between the two seeds' accuracies of the same selections. ``datamodel`` is a ridge
model of the ``trained`` reward from the selection's summaries, fitted on the other pool: its rho is held out
twice over (other pool, other target third).

Run (from the checkout root; about 25 minutes for ``mini`` on 2 cores, then about 30 for SmolLM2):
``.venv/bin/python -m benchmarks.accuracy.reward_fidelity`` then
``.venv/bin/python -m benchmarks.accuracy.reward_fidelity --target smollm2``. Both resume after a kill (runs in
``runs/reward-fidelity``). Writes ``benchmarks/results/reward_fidelity.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from benchmarks.envelope import RESULTS, ROOT, command_line, environment, load_average, load_note, write_results
from benchmarks.harness import FIDELITY_FAMILIES, HELD_OUT_FAMILIES, pick
from selectgym.agents.apply import apply_policy
from selectgym.agents.policy_file import policy_path
from selectgym.bench.harness import finetune_and_score
from selectgym.budget import resolve_budget
from selectgym.data.io import load_pool
from selectgym.data.suite import SuiteConfig, make_suite
from selectgym.data.targets import write_target_parts
from selectgym.envs.rewards import make_reward
from selectgym.envs.summaries import zscore
from selectgym.finetune.config import FinetuneConfig
from selectgym.proxies.feature_config import FeatureConfig
from selectgym.proxies.features import features_for_pool
from selectgym.proxies.models import weights_digest
from selectgym.proxies.pipeline import compute_features, load_features
from selectgym.proxies.table import merge_tables
from selectgym.selectors import get_selector
from selectgym.selectors.coverage import nearest_subtask, subtask_affinity, subtask_labels
from selectgym.utils import write_json

OUT = ROOT / "runs" / "reward-fidelity"
BUDGET = 0.05
#: the two pools: the demo's suite, and one of other families: off-target families no policy trained on, and two
#: target families that ``mini`` answers (``FIDELITY_FAMILIES``; the policies of ``trained_policy`` never saw them,
#: the shipped default did). On the transfer benchmark's held-out targets ``mini`` scores 0.00-0.04 before and after
#: training, which leaves no accuracy to rank selections by.
FAMILIES = {**FIDELITY_FAMILIES, **HELD_OUT_FAMILIES}
POOLS = {"suite": SuiteConfig(seed=0, size=600, validation_size=600),
         "heldout": SuiteConfig(seed=11, size=600, validation_size=600, target_share=0.35, defect_rate=0.3,
                                target_tasks={f: FAMILIES[f] for f in ("gcd", "letter_counting")},
                                off_target_tasks={f: FAMILIES[f] for f in ("products", "lcm", "prime_factorization",
                                                                            "number_filtering")})}
#: pools studied apart (``benchmarks.accuracy.fidelity_learnable``), not in this benchmark's report: ``learnable``
#: aims at the two families ``mini`` learns from 30 clean examples (``mini_families.md``), with the same off-target
#: families as ``heldout``
EXTRA_POOLS = {"learnable": SuiteConfig(seed=12, size=600, validation_size=600, target_share=0.35, defect_rate=0.3,
                                        target_tasks={"count_bits": {}, "spell_backward": {}},
                                        off_target_tasks=POOLS["heldout"].off_target_tasks)}
#: the fixed rules and selectors whose top picks are selections (``policy``: the shipped default policy)
METHODS = ("less", "less_sgd", "less_sgd_minus_loss", "less_balanced", "nice", "gradalign:sim",
           "gradalign:accgreedy", "gradalign:learnalign", "dpo_gap", "rds", "length", "learnability", "policy")
#: the mini target's training (the demo's: 3 epochs over the selection, batches of 8, lr 1e-3)
MINI_FT = {"lr": 1e-3, "epochs": 3.0, "batch_size": 8}
#: SmolLM2's (the headline's: 12 steps)
SMOLLM2_FT = {"lr": 1e-3, "max_steps": 12, "batch_size": 8}
TRAINED = {"model": "mini", "seed": 1000, **MINI_FT}
SUMMARIES = ("less", "less_sgd", "loss", "length", "balance")
#: the features and per-example columns of the fitted ``learned`` reward (alignment on Adam gradients, as LESS)
LEARNED_FEATURES = ["alignment", "loss", "length"]
LEARNED_COLUMNS = ("alignment", "alignment_z", "loss", "length")


# -- pools, features, selections -----------------------------------------------------------------------------
def build(name: str) -> Path:
    """The pool, its target in thirds (observe / reward / score) and its features aimed at ``observe``."""
    folder = OUT / name
    suite = folder / "suite"
    if not (folder / "score.jsonl").exists():
        make_suite(suite, {**POOLS, **EXTRA_POOLS}[name])
        write_target_parts(suite / "validation.jsonl", folder / "observe.jsonl", folder / "reward.jsonl",
                           folder / "score.jsonl")
    for kind in ("sft", "preference", "verifiable"):
        cfg = FeatureConfig(model="mini", features=features_for_pool(kind, also=["hidden"] if kind == "sft" else []),
                            proj_dim=1024, warmup_steps=20, seed=0, rollouts=4, max_new_tokens=16)
        compute_features(suite / f"{kind}.jsonl", folder / "observe.jsonl", cfg, folder / "features" / kind,
                         progress=False)
    return folder


def tables(folder: Path):
    loaded = [load_features(folder / "features" / k) for k in ("sft", "preference", "verifiable")]
    return merge_tables([t for t, _, _ in loaded]), merge_tables([v for _, v, _ in loaded if v is not None])


def mixes(pool, n: int) -> list[dict[str, Any]]:
    """Selections built from the labels: defect share, off-target share, share of the first target family."""
    meta = [ex.meta for ex in pool]
    target_tasks = sorted({m["task"] for m in meta if m["on_target"]})
    groups = {"on_clean": [i for i, m in enumerate(meta) if m["on_target"] and m["clean"]],
              "on_defect": [i for i, m in enumerate(meta) if m["on_target"] and not m["clean"]],
              "off_clean": [i for i, m in enumerate(meta) if not m["on_target"] and m["clean"]]}
    for t, task in enumerate(target_tasks[:2]):
        groups[f"task{t}"] = [i for i in groups["on_clean"] if meta[i]["task"] == task]
    out = []

    def draw(name: str, parts: dict[str, float], seed: int) -> None:
        rng = np.random.default_rng([seed, len(out)])
        counts = {g: int(round(share * n)) for g, share in parts.items()}
        counts[next(iter(parts))] += n - sum(counts.values())
        rows: list[int] = []
        for g, k in counts.items():
            rows += [int(r) for r in rng.choice(groups[g], k, replace=False)]
        out.append({"name": f"{name}-s{seed}", "kind": "mix", "rows": rows})

    for seed in range(3):
        for d in (0.0, 0.25, 0.5, 0.75, 1.0):
            draw(f"defect{d:.2f}", {"on_clean": 1 - d, "on_defect": d}, seed)
        for o in (0.25, 0.5, 0.75, 1.0):
            draw(f"offtarget{o:.2f}", {"on_clean": 1 - o, "off_clean": o}, seed)
        if len(target_tasks) > 1:
            for f in (0.0, 0.25, 0.75, 1.0):
                draw(f"first_subtask{f:.2f}", {"task0": f, "task1": 1 - f}, seed)
    return out


def selections(folder: Path, train, val, n_random: int) -> list[dict[str, Any]]:
    """Every selection of the pool, once (saved, so a resumed run scores the same ones)."""
    path = folder / "selections.json"
    if path.exists():
        return json.loads(path.read_text())
    pool = load_pool(folder / "suite" / "sft.jsonl")
    n = resolve_budget(BUDGET, len(pool))
    subtasks = subtask_labels(load_pool(folder / "observe.jsonl"))
    out = [{"name": f"random-s{s}", "kind": "random",
            "rows": [int(r) for r in np.random.default_rng(s).choice(len(pool), n, replace=False)]}
           for s in range(n_random)]
    for method in METHODS:
        if method == "policy":
            sel = apply_policy(policy_path("default"), budget=BUDGET, seed=0, table=train, val_table=val)
            rows = [train.ids.index(i) for i in sel.ids]
        elif method.startswith("less") or method == "random":
            rows = pick(method, train, val, BUDGET, 0, {}, subtasks=subtasks)
        else:
            name, _, mode = method.partition(":")
            sel = get_selector(name, **({"mode": mode} if mode else {})).select(train, val, BUDGET, 0)
            rows = [train.ids.index(i) for i in sel.ids]
        out.append({"name": method, "kind": "method", "rows": [int(r) for r in rows]})
    out += mixes(pool, n)
    for s in out:
        s["ids"] = [pool[r].id for r in s["rows"]]
    write_json(path, out)
    return out


# -- what each selection is worth: rewards, references, accuracy -------------------------------------------------
def env_returns(folder: Path, train, val, rows: list[int], cache: dict, only: tuple[str, ...] = (),
                seconds: dict[str, float] | None = None) -> dict[str, float]:
    """The return of an episode that takes ``rows``: one row per step (ExampleSelect) for the per-example rewards,
    batches of 8 (FeatureSelect) for ``proxy``, and the terminal ``trained`` rewards; each one's seconds into
    ``seconds``."""
    if not cache:
        pool, reward_pool = load_pool(folder / "suite" / "sft.jsonl"), load_pool(folder / "reward.jsonl")
        learned = json.loads((RESULTS / "transfer.json").read_text())["reward_study"]["learned_weights"]
        cache.update({
            "linear": make_reward("linear", train, val, lr=1.0, redundancy=0.0),
            "linear_adam": make_reward("linear", train, val, lr=1.0, redundancy=0.0, train_grad="grad_adam"),
            "learned": make_reward("learned", train, val, weights=learned),
            "proxy": make_reward("proxy", train, val, pool=pool, val_pool=reward_pool,
                                 model="mini", lr=1e-3, steps=2, val_subsample=64, seed=0),
            "trained": make_reward("trained", train, val, pool=pool, val_pool=reward_pool, **TRAINED),
            "trained_loss": make_reward("trained", train, val, pool=pool, val_pool=reward_pool, score="loss",
                                        **TRAINED),
            # the mean of several training runs: one run's seed noise is the size of what it ranks
            "trained_x3": make_reward("trained", train, val, pool=pool, val_pool=reward_pool, repeats=3, **TRAINED),
            "trained_loss_x4": make_reward("trained", train, val, pool=pool, val_pool=reward_pool, score="loss",
                                           repeats=4, **TRAINED)})
    out = {}
    for name, reward in cache.items():
        if only and name not in only:
            continue
        started = time.perf_counter()
        reward.reset()
        steps = [rows[i:i + 8] for i in range(0, len(rows), 8)] if name == "proxy" else [[r] for r in rows]
        total = sum(reward.step(np.array(s)) for s in steps)
        out[name] = float(total + reward.finish(np.array(rows)))
        if seconds is not None:
            seconds[name] = time.perf_counter() - started
    return out


def references(train, val, subtasks: list[str], rows: list[int], pool, cache: dict) -> dict[str, float]:
    """Single features of the selection, the reference lines."""
    if not cache:
        rng = np.random.default_rng(0)
        affinity, _ = subtask_affinity(train, val, subtasks)
        cache.update({"less": get_selector("less").score(train, val, rng),
                      "less_sgd": get_selector("less", gradient_type="sgd").score(train, val, rng),
                      "loss": np.asarray(train.get("loss"), dtype=np.float64),
                      "length": zscore(np.log1p(np.asarray(train.get("length"), dtype=np.float64))),
                      "nearest": nearest_subtask(affinity), "n_subtasks": affinity.shape[1]})
    counts = np.bincount(cache["nearest"][rows], minlength=cache["n_subtasks"]) / len(rows)
    entropy = -sum(p * np.log(p) for p in counts if p > 0) / np.log(cache["n_subtasks"])
    return {"less": float(cache["less"][rows].mean()), "less_sgd": float(cache["less_sgd"][rows].mean()),
            "loss": float(cache["loss"][rows].mean()), "length": float(cache["length"][rows].mean()),
            "balance": float(entropy),
            "useful_share": float(np.mean([bool(pool[r].meta.get("useful")) for r in rows]))}


def untrained(folder: Path, target: str) -> float:
    """The target's accuracy on the score third before any fine-tuning (cached): a selection below it did harm."""
    path = folder / f"untrained-{target}.json"
    if not path.exists():
        import torch

        from selectgym.finetune.evaluate import evaluate
        from selectgym.proxies.models import load_model

        model, tokenizer = load_model(target)
        model.eval()
        with torch.no_grad():
            write_json(path, evaluate(model, tokenizer, load_pool(folder / "score.jsonl")))
    return float(json.loads(path.read_text())["accuracy"])


def accuracy(folder: Path, ids: list[str], target: str, seed: int, third: str = "score") -> dict[str, float]:
    """``target`` fine-tuned on ``ids`` with ``seed`` and scored on a third of the target set (``score``; ``reward``
    to see how two thirds agree on the same training)."""
    settings = MINI_FT if target == "mini" else SMOLLM2_FT
    cfg = FinetuneConfig(method="sft", model=target, seed=seed, output_dir=str(folder / "ft" / f"{target}-{seed}"),
                         **settings)
    out = finetune_and_score(cfg, load_pool(folder / "suite" / "sft.jsonl"), ids, load_pool(folder / f"{third}.jsonl"))
    return {"accuracy": out["accuracy"], "val_loss": out["val_loss"], "train_seconds": out["train_seconds"]}


def smollm2_subset(sels: list[dict[str, Any]], n: int) -> list[int]:
    """``n`` selections for SmolLM2, spread over the range: every method's, then mixes and random draws in turn."""
    order = [i for i, s in enumerate(sels) if s["kind"] == "method"]
    rest = [i for i, s in enumerate(sels) if s["kind"] == "mix" and s["name"].endswith("-s0")]
    rest += [i for i, s in enumerate(sels) if s["kind"] == "random"]
    return (order + rest)[:n]


def run_pool(name: str, target: str, n_smollm2: int, repeat_smollm2: int, n_random: int,
             recompute: tuple[str, ...] = ()) -> None:
    folder = build(name)
    train, val = tables(folder)
    sels = selections(folder, train, val, n_random)
    pool = load_pool(folder / "suite" / "sft.jsonl")
    subtasks = subtask_labels(load_pool(folder / "observe.jsonl"))
    path = folder / f"runs-{target}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    todo = range(len(sels)) if target == "mini" else smollm2_subset(sels, n_smollm2)
    reward_cache: dict = {}
    ref_cache: dict = {}
    for k, i in enumerate(todo):
        s = sels[i]
        seeds = (0, 1) if target == "mini" or k < repeat_smollm2 else (0,)
        record = done.get(s["name"], {})
        if recompute and target == "mini" and "rewards" in record:  # the named rewards only, after they changed
            record["rewards"].update(env_returns(folder, train, val, s["rows"], reward_cache, only=recompute,
                                                 seconds=record.setdefault("seconds_by_reward", {})))
            done[s["name"]] = record
            write_json(path, done)
            continue
        if all(str(seed) in record.get("accuracy", {}) for seed in seeds) and (target != "mini" or "rewards" in record):
            continue
        record.setdefault("accuracy", {})
        for seed in seeds:
            if str(seed) not in record["accuracy"]:
                record["accuracy"][str(seed)] = accuracy(folder, s["ids"], target, seed)
        if target == "mini":
            started = time.perf_counter()
            record["rewards"] = env_returns(folder, train, val, s["rows"], reward_cache,
                                            seconds=record.setdefault("seconds_by_reward", {}))
            record["reward_seconds"] = time.perf_counter() - started
            record["references"] = references(train, val, subtasks, s["rows"], pool, ref_cache)
        done[s["name"]] = record
        write_json(path, done)
        print(f"{name} {target} {k + 1}/{len(todo)} {s['name']}: "
              f"{np.mean([a['accuracy'] for a in record['accuracy'].values()]):.3f}", flush=True)


# -- the report ---------------------------------------------------------------------------------------------------
def rho_ci(x: np.ndarray, y: np.ndarray, seed: int = 0, n_boot: int = 2000) -> dict[str, Any]:
    rho = float(spearmanr(x, y)[0])
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        k = rng.integers(0, len(x), len(x))
        if np.ptp(x[k]) > 0 and np.ptp(y[k]) > 0:
            boots.append(spearmanr(x[k], y[k])[0])
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return {"rho": round(rho, 3), "ci": [round(float(lo), 3), round(float(hi), 3)]}


def one_seed_rho(values: np.ndarray, keys: list[str], twice: list[str], recs: dict) -> float:
    """rho with one training seed's accuracy (the mean over the two seeds), over the selections trained twice: the
    figure to hold against the noise ceiling, which also compares single seeds."""
    at = [keys.index(s) for s in twice]
    return round(float(np.mean([spearmanr(values[at], [recs[s]["accuracy"][seed]["accuracy"] for s in twice])[0]
                                for seed in ("0", "1")])), 3)


def _standard(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def datamodel(fit: list[dict], apply: list[dict]) -> tuple[np.ndarray, dict[str, float]]:
    """A ridge model of the ``trained`` reward from the selection summaries, fitted on ``fit``, applied to ``apply``
    (each pool's summaries z-scored within the pool, so the weights carry over)."""
    from sklearn.linear_model import RidgeCV

    def x_of(records):
        return _standard(np.array([[r["references"][f] for f in SUMMARIES] for r in records]))

    y = np.array([r["rewards"]["trained"] for r in fit])
    model = RidgeCV(alphas=np.logspace(-2, 3, 20)).fit(x_of(fit), y)
    return model.predict(x_of(apply)), dict(zip(SUMMARIES, np.round(model.coef_, 4).tolist(), strict=True))


def example_columns(folder: Path) -> tuple[np.ndarray, list[str]]:
    """The per-example columns a ``learned`` reward reads (``LEARNED_COLUMNS``, alignment on Adam gradients)."""
    from selectgym.envs.summaries import example_matrix

    train, val = tables(folder)
    x, _, columns = example_matrix(train, val, LEARNED_FEATURES, train_grad="grad_adam")
    keep = [columns.index(c) for c in LEARNED_COLUMNS]
    return x[:, keep], list(LEARNED_COLUMNS)


def fit_learned(pools: dict[str, tuple[list[list[int]], np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Per-example weights for the ``learned`` reward: a ridge fit of the ``trained`` reward on the selection's
    mean columns (the mean of a linear score is the linear score of the means), over the given pools."""
    from sklearn.linear_model import RidgeCV

    xs, ys = [], []
    for rows, x, y in pools.values():
        xs.append(np.array([x[r].mean(axis=0) for r in rows]))
        ys.append(y - y.mean())  # each pool's own level: the reward ranks selections of one pool
        xs[-1] = xs[-1] - xs[-1].mean(axis=0)
    model = RidgeCV(alphas=np.logspace(-3, 2, 16), fit_intercept=False).fit(np.vstack(xs), np.concatenate(ys))
    return dict(zip(LEARNED_COLUMNS, np.round(model.coef_, 4).tolist(), strict=True))


def per_selection(name: str, sels: dict, runs: dict) -> list[dict[str, Any]]:
    """Every selection's figures: accuracy per target (mean of its seeds), the mini runs' rewards and references,
    and how many picks each target family got (ground truth, for reading the table only)."""
    pool = load_pool(OUT / name / "suite" / "sft.jsonl")
    targets = sorted({ex.meta["task"] for ex in pool if ex.meta["on_target"]})
    out = []
    for key, rec in runs["mini"].items():
        tasks = [pool[r].meta["task"] for r in sels[key]["rows"]]
        out.append({"name": key, "kind": sels[key]["kind"],
                    "accuracy": {t: round(float(np.mean([a["accuracy"] for a in recs[key]["accuracy"].values()])), 4)
                                 for t, recs in runs.items() if key in recs},
                    "rewards": {k: round(v, 5) for k, v in rec["rewards"].items()},
                    "references": {k: round(v, 5) for k, v in rec["references"].items()},
                    "target_family_picks": {t: tasks.count(t) for t in targets}})
    return out


def report(argv: list[str] | None, before: list[float], started: float) -> dict[str, Any]:
    loaded = {}
    for name in POOLS:
        sels = {s["name"]: s for s in json.loads((OUT / name / "selections.json").read_text())}
        runs = {t: json.loads(p.read_text()) for t in ("mini", "smollm2")
                if (p := OUT / name / f"runs-{t}.json").exists()}
        loaded[name] = (sels, runs)
    columns = {name: example_columns(OUT / name)[0] for name in POOLS}
    fits = {name: ([sels[s]["rows"] for s in runs["mini"]], columns[name],
                   np.array([r["rewards"]["trained"] for r in runs["mini"].values()]))
            for name, (sels, runs) in loaded.items()}
    out: dict[str, Any] = {"command": command_line(__file__, argv), "environment": environment(),
                           "proxy_digest": weights_digest("mini"), "budget": BUDGET, "default": "linear",
                           "pools": {}, "datamodel_weights": {}, "reward_seconds_per_selection": {},
                           "selections": {},
                           "learned_fit_weights": {"all_pools": fit_learned(fits)}}
    for name, (sels, runs) in loaded.items():
        mini = runs["mini"]
        other = next(p for p in loaded if p != name)
        fit = list(loaded[other][1]["mini"].values())
        names = list(mini)
        dm, weights = datamodel(fit, [mini[s] for s in names])
        out["datamodel_weights"][f"fitted_on_{other}"] = weights
        held = fit_learned({other: fits[other]})
        out["learned_fit_weights"][f"fitted_on_{other}"] = held
        w = np.array([held[c] for c in LEARNED_COLUMNS])
        learned_fit = {s: float((columns[name][sels[s]["rows"]] @ w).mean()) for s in names}
        out["pools"][name] = {}
        for target, recs in runs.items():
            keys = [s for s in names if s in recs]
            if len(keys) < 5:  # too few to rank (a SmolLM2 phase just begun)
                continue
            acc = np.array([np.mean([a["accuracy"] for a in recs[s]["accuracy"].values()]) for s in keys])
            twice = [s for s in keys if len(recs[s]["accuracy"]) > 1]
            ceiling = float(spearmanr([recs[s]["accuracy"]["0"]["accuracy"] for s in twice],
                                      [recs[s]["accuracy"]["1"]["accuracy"] for s in twice])[0])
            values = {r: np.array([mini[s]["rewards"][r] for s in keys]) for r in mini[keys[0]]["rewards"]}
            values["datamodel"] = np.array([dm[names.index(s)] for s in keys])
            values["learned_fit"] = np.array([learned_fit[s] for s in keys])
            rewards = {r: {**rho_ci(v, acc), "rho_one_seed": one_seed_rho(v, keys, twice, recs)}
                       for r, v in values.items()}
            refs = {f: round(float(spearmanr([mini[s]["references"][f] for s in keys], acc)[0]), 3)
                    for f in mini[keys[0]]["references"]}
            kinds = {}
            for kind in ("random", "method", "mix"):
                at = [keys.index(s) for s in keys if sels[s]["kind"] == kind]
                kinds[kind] = {"n": len(at), "accuracy_mean": round(float(np.mean(acc[at])), 4) if at else None}
            two_seed = float(np.sqrt(2 * ceiling / (1 + ceiling))) if ceiling > 0 else None
            before_training = untrained(OUT / name, target)
            out["pools"][name][target] = {
                "untrained_accuracy": round(before_training, 4),
                "above_untrained": int((acc > before_training).sum()),
                "selections": len(keys), "seeds_twice": len(twice), "noise_ceiling": round(ceiling, 3),
                "noise_ceiling_two_seed_mean": None if two_seed is None else round(two_seed, 3),
                "accuracy_range": [round(float(acc.min()), 4), round(float(acc.max()), 4)], "by_kind": kinds,
                "rewards": rewards, "references": refs,
                "method_accuracy": {s: round(float(acc[keys.index(s)]), 4) for s in keys
                                    if sels[s]["kind"] == "method"}}
        secs = [mini[s]["reward_seconds"] for s in names]
        out["reward_seconds_per_selection"][name] = round(float(np.median(secs)), 2)
        timed = {r for s in names for r in mini[s].get("seconds_by_reward", {})}
        out.setdefault("episode_seconds_by_reward", {})[name] = {
            r: round(float(np.median([mini[s]["seconds_by_reward"][r] for s in names
                                      if r in mini[s].get("seconds_by_reward", {})])), 2) for r in sorted(timed)}
        out["selections"][name] = per_selection(name, sels, runs)
    out["seconds_this_call"] = round(time.perf_counter() - started, 1)
    out["load_note"] = load_note(before, load_average())
    return out


def markdown(rep: dict[str, Any]) -> str:
    lines = ["# Reward fidelity: does the return rank selections as the target's accuracy does?", "",
             f"Command: `{rep['command']}`. {rep['environment']}, no GPU. {rep['load_note']} Proxy `mini` "
             f"(weights {rep['proxy_digest']}), selections of {rep['budget']:.0%}.", "",
             "Spearman's rho between each reward's episode return (or a single feature of the selection) and the "
             "accuracy of the target trained on the selection (mean of its training seeds), scored on a third of "
             "the target set no feature or reward aimed at; [95% bootstrap interval]. r is the rho between two "
             "training seeds' accuracies of the same selections: a perfect reward would reach sqrt(r) with one "
             "seed's accuracy and sqrt(2r / (1 + r)) with the two seeds' mean (the ceiling for the rho column). *One "
             "seed* is a reward's rho with a single seed's accuracy (the mean over both seeds); its share of the "
             "ceiling is that over sqrt(r).", "",
             "`datamodel` and `learned_fit` are fitted on the other pool's selections, to the `trained` reward (the "
             "reward third), never to the scored accuracy.", ""]
    for pool, targets in rep["pools"].items():
        for target, r in targets.items():
            if not isinstance(r, dict):
                continue
            lines += [f"## {pool}, target {target}: {r['selections']} selections", "",
                      f"Seed-to-seed rho r = {r['noise_ceiling']:+.2f} ({r['seeds_twice']} selections trained twice"
                      + (f"; ceiling for the two-seed mean {r['noise_ceiling_two_seed_mean']:.2f}"
                         if r["noise_ceiling_two_seed_mean"] is not None else "") + "). Accuracy from "
                      f"{r['accuracy_range'][0]:.3f} to {r['accuracy_range'][1]:.3f}; untrained, the target scores "
                      f"{r['untrained_accuracy']:.3f} on the same problems, and {r['above_untrained']} of the "
                      f"{r['selections']} selections beat that."
                      + (f" The ceiling and the one-seed column read only the {r['seeds_twice']} selections trained "
                         "twice (the methods' picks first), a narrower sample than the rho column's: compare them "
                         "with each other, not with rho." if r["seeds_twice"] < r["selections"] else ""), "",
                      "| reward | rho | 95% interval | one seed | share of the ceiling |", "|---|---:|---|---:|---:|"]
            for name, v in sorted(r["rewards"].items(), key=lambda kv: -kv[1]["rho"]):
                ceiling = np.sqrt(r["noise_ceiling"]) if r["noise_ceiling"] > 0 else float("nan")
                share = v["rho_one_seed"] / ceiling
                lines.append(f"| `{name}` | {v['rho']:+.2f} | [{v['ci'][0]:+.2f}, {v['ci'][1]:+.2f}] | "
                             f"{v['rho_one_seed']:+.2f} | {share:.0%} |")
            lines += ["", "| reference (mean over the selection) | rho |", "|---|---:|"]
            for name, v in sorted(r["references"].items(), key=lambda kv: -kv[1]):
                lines.append(f"| {name} | {v:+.2f} |")
            lines.append("")
    for pool, timed in rep.get("episode_seconds_by_reward", {}).items():
        if timed:
            lines += [f"Seconds per episode ({pool}, median over its selections, timed while the benchmark ran): "
                      + ", ".join(f"`{r}` {t:.2f}" for r, t in timed.items()) + ".", ""]
    lines += ["## Fitted weights", "", "`learned_fit` (per-example columns, alignment on Adam gradients):", ""]
    for name, w in rep["learned_fit_weights"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:+.4f}" for k, v in w.items()))
    lines += ["", "`datamodel` (selection summaries, z-scored within the pool):", ""]
    for name, w in rep["datamodel_weights"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:+.4f}" for k, v in w.items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("mini", "smollm2"), default="mini")
    parser.add_argument("--pools", nargs="+", choices=list(POOLS), default=list(POOLS))
    parser.add_argument("--random", type=int, default=24, help="random draws per pool")
    parser.add_argument("--smollm2", type=int, default=30, help="selections of the suite SmolLM2 is trained on")
    parser.add_argument("--smollm2-repeat", type=int, default=10, help="of those, trained with a second seed")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--recompute", nargs="+", default=(), metavar="REWARD",
                        help="recompute only these rewards of the saved mini runs (after the reward changed)")
    args = parser.parse_args(argv)
    before, started = load_average(), time.perf_counter()
    if not args.report_only:
        for name in args.pools if args.target == "mini" else ["suite"]:
            run_pool(name, args.target, args.smollm2, args.smollm2_repeat, args.random, tuple(args.recompute))
    rep = report(argv, before, started)
    write_results(RESULTS / "reward_fidelity", rep, markdown(rep))
    print(markdown(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
