"""The benchmark harness: every method x budget x seed on the same pool, proxy and target.

Flow: the built-in suite (or your own pool files) -> proxy features, computed once and shared by every
method -> for each seed: a learned policy (trained on the features with the fast ``linear`` reward) and
the classic selectors pick a subset -> the target is fine-tuned on it with LoRA SFT -> verifier accuracy
and validation loss on the target set. ``full`` trains on the whole pool. Feature and agent costs are
charged to the methods that need them, so the table shows the cost of selection next to training.
Every run is saved as it ends: started again with the same config and ``out``, the benchmark resumes.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from selectgym.agents.config import AgentConfig
from selectgym.agents.train import train_agent
from selectgym.bench.config import (
    FEATURE_POOLS,
    OBJECTIVE_POOLS,
    BenchConfig,
    changed_settings,
    feature_sources,
    method_needs,
    method_options,
    method_reads,
)
from selectgym.bench.report import FULL, markdown_table, plot, summarise
from selectgym.data import Pool, load_pool
from selectgym.data.suite import SuiteConfig, make_suite, wrong_answer_pairs
from selectgym.data.targets import write_target_halves
from selectgym.errors import SelectgymError
from selectgym.finetune.config import FinetuneConfig
from selectgym.finetune.evaluate import evaluate, preference_accuracy
from selectgym.finetune.train import train
from selectgym.proxies.features import features_for_pool
from selectgym.proxies.models import weights_digest
from selectgym.proxies.pipeline import FeatureConfig, compute_features, load_features
from selectgym.proxies.table import FeatureTable, merge_tables
from selectgym.selectors import SELECTORS, get_selector, selector_class
from selectgym.selectors.coverage import subtask_labels
from selectgym.utils import file_digest, write_json

__all__ = ["Bench", "BenchConfig", "finetune_and_score", "run_bench"]

log = logging.getLogger(__name__)


class Bench:
    """Runs a ``BenchConfig``; each stage is a method so a test can run or replace it."""

    def __init__(self, cfg: BenchConfig, progress: bool = True):
        self.cfg, self.progress = cfg, progress
        self.out = Path(cfg.out)
        self.costs: dict[str, float] = {}

    # -- data and features ---------------------------------------------------------------------------------
    def pools(self) -> Path:
        """The pool folder (also kept as ``self._suite``, with the target files every later stage reads)."""
        if self.cfg.suite_dir:
            folder = Path(self.cfg.suite_dir)
        else:
            folder = self.out / "suite"
            make_suite(folder, SuiteConfig(seed=self.cfg.suite_seed, size=self.cfg.suite_size,
                                           validation_size=self.cfg.validation_size,
                                           noisy_answer_share=self.cfg.noisy_answer_share,
                                           pair_defect_share=self.cfg.pair_defect_share))
        self._val_select = self._val_eval = folder / "validation.jsonl"
        if self.cfg.split_target:
            self._val_select, self._val_eval = self.out / "target_select.jsonl", self.out / "target_eval.jsonl"
            write_target_halves(folder / "validation.jsonl", self._val_select, self._val_eval)
        # read once, and a target without the field fails here, before any features or training
        self._subtasks = (subtask_labels(load_pool(self._val_select), self.cfg.balance_subtasks)
                          if self.cfg.balance_subtasks else None)
        self._suite = folder
        return folder

    def needed_pools(self) -> list[str]:
        """The feature pool kinds the methods read that the objective's pools can give (``feature_sources``)."""
        kinds = {k for m in self.cfg.methods for k in method_needs(m)}
        sources = feature_sources(self.cfg.objective)
        return [k for k in FEATURE_POOLS if k in kinds and k in sources]

    def target_pool(self) -> Path:
        """The pool file the target trains on: the objective's (``OBJECTIVE_POOLS``)."""
        return self._suite / f"{OBJECTIVE_POOLS[self.cfg.objective]}.jsonl"

    def pool_features(self, kind: str) -> list[str]:
        """The features computed on ``kind``'s pool: its standard set, and the on-demand ones a method reads."""
        return features_for_pool(kind, also=[f for m in self.cfg.methods for f in method_reads(m)])

    def features(self, suite: Path) -> tuple[FeatureTable | None, FeatureTable | None]:

        trains, vals = [], []
        sources = feature_sources(self.cfg.objective)
        for kind in self.needed_pools():
            cfg = FeatureConfig(model=self.cfg.proxy, features=self.pool_features(kind), proj_dim=self.cfg.proj_dim,
                                warmup_steps=self.cfg.proxy_warmup_steps, seed=self.cfg.suite_seed,
                                rollouts=self.cfg.rollouts, max_new_tokens=self.cfg.max_new_tokens)
            start = time.perf_counter()
            compute_features(suite / f"{sources[kind]}.jsonl", self._val_select, cfg, self.out / "features" / kind,
                             progress=self.progress)
            self.costs.setdefault(kind, time.perf_counter() - start)  # a resumed run keeps the first cost
            train, val, _ = load_features(self.out / "features" / kind)
            trains.append(train)
            if val is not None:
                vals.append(val)
        if not trains:
            return None, None
        return merge_tables(trains), (merge_tables(vals) if vals else None)

    # -- selection --------------------------------------------------------------------------------------
    def select(self, method: str, budget: float, seed: int, train: FeatureTable | None,
               val: FeatureTable | None) -> tuple[list[str], float, str | None]:
        """Ids chosen by ``method``, the seconds it cost (features + agent training included) and, for ``policy``,
        the digest of the policy file that chose them (None for the other methods)."""
        name, options = method_options(method)
        cost = sum(self.costs.get(k, 0.0) for k in method_needs(method))
        start = time.perf_counter()
        digest = None
        if name == "policy":  # a saved one, or trained here; then applied like any selector
            options = {"policy_path": self.saved_policy(seed) if self.cfg.policy_path else
                       self.policy(budget, seed, train, val)}
            digest = file_digest(options["policy_path"])
        if self._subtasks is not None and selector_class(name).balances_subtasks:
            options["subtasks"] = self._subtasks
            if "balance" in SELECTORS.options(name):  # LESS/NICE balance only when asked; a policy always does
                options["balance"] = True
        sel = get_selector(name, **options).select(train if train is not None else self._id_table(), val, budget,
                                                    seed)
        return list(sel.ids), cost + time.perf_counter() - start, digest

    def policy(self, budget: float, seed: int, train: FeatureTable, val: FeatureTable | None) -> Path:
        """Train (once per budget and seed) a policy on the pool's features (the ``agent`` settings; by default
        FeatureSelect with the linear reward)."""

        path = self.out / "policies" / f"policy-b{budget}-s{seed}.zip"
        if not path.exists():
            start = time.perf_counter()
            cfg = AgentConfig(**{"progress_bar": False, "eval_freq": 0, **self.cfg.agent, "algo": self.cfg.agent_algo,
                                 "timesteps": self.cfg.agent_timesteps, "seed": seed, "budget": budget})
            train_agent(cfg, train, val, out=path)
            self.costs[f"agent-{budget}-{seed}"] = time.perf_counter() - start
        return path

    def saved_policy(self, seed: int) -> Path:
        from selectgym.agents.policy_file import policy_path

        path = policy_path(self.cfg.policy_path.replace("{seed}", str(seed)))
        if not path.is_file():
            raise SelectgymError(f"policy_path {path} (seed {seed}) does not exist: train it with `selectgym "
                                 "train-agent` or point policy_path at a saved policy")
        return path

    def _id_table(self) -> FeatureTable:

        return FeatureTable(load_pool(self.target_pool()).ids)

    # -- training and evaluation ------------------------------------------------------------------------
    def finetune(self, ids: list[str], seed: int, full: bool) -> dict[str, Any]:
        """Train the target on ``ids`` of the objective's pool with its trainer (GRPO: groups of ``rollouts``
        completions of up to ``max_new_tokens``, rewarded by the pool's verifier) and score it; with DPO also on
        held-out pairs (``held_out_pairs``)."""
        pool = load_pool(self.target_pool())
        val = load_pool(self._val_eval)
        grpo = {"num_generations": self.cfg.rollouts, "max_completion_length": self.cfg.max_new_tokens} \
            if self.cfg.objective == "grpo" else {}
        cfg = FinetuneConfig(method=self.cfg.objective, model=self.cfg.target, seed=seed, lr=self.cfg.ft_lr,
                             epochs=self.cfg.full_epochs if full else self.cfg.ft_epochs,
                             max_steps=-1 if full else self.cfg.ft_max_steps, batch_size=self.cfg.ft_batch_size,
                             output_dir=str(self.out / "runs" / f"ft-{len(ids)}-{seed}-{time.monotonic_ns()}"),
                             **grpo)
        pairs = self.held_out_pairs() if self.cfg.objective == "dpo" else None
        return finetune_and_score(cfg, pool, ids, val, self.cfg.max_new_tokens, pairs=pairs)

    def held_out_pairs(self) -> Pool:
        """Preference pairs from the target problems scored on (``wrong_answer_pairs``): the reference answer over
        a wrong one, drawn from the suite seed, so every method and seed is scored on the same pairs."""
        return wrong_answer_pairs(load_pool(self._val_eval), self.cfg.suite_seed)

    # -- the whole run ----------------------------------------------------------------------------------
    def resume(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The runs and failures an earlier start of the same config saved in ``out`` (none on a fresh start)."""
        path = self.out / "runs.json"
        if not path.exists():
            return [], []
        saved = json.loads(path.read_text())
        changed = changed_settings(saved.get("config", {}), self.cfg)
        if changed:
            raise SelectgymError(f"{self.out} holds a benchmark with other settings ({', '.join(changed)}): use "
                                 "another --out, or delete that folder to start again")
        digests = {} if not self.cfg.policy_path else {
            seed: file_digest(self.saved_policy(seed)) for seed in {r["seed"] for r in saved.get("runs", [])
                                                                      if r["method"] == "policy"}}
        runs = [r for r in saved.get("runs", []) if r["method"] != "policy" or not self.cfg.policy_path
                or r.get("policy_digest") == digests[r["seed"]]]
        if len(runs) < len(saved.get("runs", [])):
            log.warning("%d policy runs of %s used another file at policy_path: running them again",
                        len(saved["runs"]) - len(runs), self.out)
        self._check_proxy_build(saved)
        self.costs.update(saved.get("costs", {}))
        log.info("resuming %s: %d runs done", self.out, len(saved.get("runs", [])))
        return runs, list(saved.get("failures", []))

    @functools.cached_property
    def proxy_digest(self) -> str | None:
        """The digest of the proxy's weights when a method reads it (``proxies.models.weights_digest``)."""
        return weights_digest(self.cfg.proxy) if self.needed_pools() else None

    def _check_proxy_build(self, saved: dict[str, Any]) -> None:
        """Refuse to add runs to ones selected with other proxy weights: a proxy pretrained on another machine
        (``mini``) has other weights, other features and other picks, and a table mixing both compares neither."""
        read = [r for r in saved.get("runs", []) if method_needs(r["method"])]
        recorded = saved.get("proxy_digest")
        if not read or recorded == self.proxy_digest:
            return
        if recorded is None:
            log.warning("%s: its %d saved runs that read the proxy do not record its weights; they are assumed to "
                        "come from this build of %s", self.out, len(read), self.cfg.proxy)
            return
        raise SelectgymError(f"{self.out} holds runs selected with another build of the proxy {self.cfg.proxy!r} "
                             f"(weights {recorded}, here {self.proxy_digest}; a model pretrained on another machine "
                             "has other weights): use another --out, or delete that folder to start again")

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        runs, failures = self.resume()
        self.pools()
        if cfg.policy_path and "policy" in cfg.methods:
            for seed in cfg.seeds:  # a missing file is a setup error: say so before hours of work
                self.saved_policy(seed)
        train, val = self.features(self._suite)

        all_ids = load_pool(self._suite / "sft.jsonl").ids
        done = {(r["method"], r["budget"], r["seed"]) for r in runs + failures}
        todo = [(seed, method, budget) for seed in cfg.seeds for method in cfg.methods
                for budget in ([1.0] if method == FULL else cfg.budgets) if (method, budget, seed) not in done]
        for seed, method, budget in tqdm(todo, desc="select + fine-tune", unit="run", disable=not self.progress,
                                         dynamic_ncols=True):
            if method == FULL:
                ids, sel_s, digest = list(all_ids), 0.0, None
            else:
                try:
                    ids, sel_s, digest = self.select(method, budget, seed, train, val)
                except SelectgymError as err:  # one method's failure must not sink the benchmark
                    log.warning("%s budget=%s seed=%d failed: %s", method, budget, seed, err)
                    failures.append({"method": method, "budget": budget, "seed": seed, "error": str(err)})
                    continue
            metrics = self.finetune(ids, seed, full=method == FULL)
            run = {"method": method, "budget": budget, "seed": seed, "n_selected": len(ids),
                   "select_seconds": sel_s, **metrics, "ids": ids}
            if digest:  # which policy file made it, so a resume notices a replaced one
                run["policy_digest"] = digest
            log.info("%s budget=%s seed=%d: accuracy %.3f, val loss %.3f", method, budget, seed,
                     run["accuracy"], run["val_loss"])
            runs.append(run)
            write_json(self.out / "runs.json", {"config": asdict(cfg), "proxy_digest": self.proxy_digest,
                                                "runs": runs, "costs": self.costs, "failures": failures})
        if not runs:
            raise SelectgymError(f"every method failed; first error: {failures[0]['error']}")
        rows = summarise(runs)
        table = markdown_table(rows)
        for fail in {(f["method"], f["error"]) for f in failures}:
            table += f"\n- {fail[0]} failed: {fail[1]}"
        table += "\n" if failures else ""
        (self.out / "table.md").write_text(table)
        plots = plot(rows, self.out)
        result = {"config": asdict(cfg), "proxy_digest": self.proxy_digest, "runs": runs, "failures": failures,
                  "summary": rows, "costs": self.costs,
                  "plots": [str(p) for p in plots], "table": table}
        write_json(self.out / "runs.json", result)
        return result


def finetune_and_score(cfg: FinetuneConfig, pool: Pool, ids: Sequence[str], target: Pool,
                       max_new_tokens: int = 16, pairs: Pool | None = None) -> dict[str, Any]:
    """Fine-tune ``cfg.model`` on the examples ``ids`` of ``pool`` and score it on ``target``: ``finetune.evaluate``'s
    metrics (verifier accuracy of greedy answers, validation loss), ``train_seconds``, ``useful_share`` (the share
    of ``ids`` that are clean and on-target) and, when the pool carries their labels, ``noisy_share`` (picks with a
    wrong reference answer) and ``pair_defect_share`` (picks with a swapped or near-identical pair); all ground
    truth, read for measuring only. With ``pairs``, ``preference_accuracy`` on them too."""
    start = time.perf_counter()
    result = train(cfg, pool.subset(ids))
    seconds = time.perf_counter() - start
    metrics = evaluate(result.model, result.tokenizer, target, max_new_tokens=max_new_tokens)
    if pairs is not None:
        metrics["preference_accuracy"] = preference_accuracy(result.model, result.tokenizer, pairs,
                                                             max_length=cfg.max_length)
    return {**metrics, "train_seconds": seconds, **picked_shares(pool, ids)}


def picked_shares(pool: Pool, ids: Sequence[str]) -> dict[str, float]:
    """Ground-truth shares of the picks: ``useful_share`` always, ``noisy_share`` and ``pair_defect_share`` only
    when ``pool`` carries the ``noisy_reward`` / ``pair_defect`` labels (the suite's opt-in defects)."""
    metas = [pool[pool.index(i)].meta for i in ids]
    shares = {"useful_share": float(np.mean([bool(m.get("useful")) for m in metas]))}
    if any("noisy_reward" in ex.meta for ex in pool):
        shares["noisy_share"] = float(np.mean([bool(m.get("noisy_reward")) for m in metas]))
    if any("pair_defect" in ex.meta for ex in pool):
        shares["pair_defect_share"] = float(np.mean([m.get("pair_defect") is not None for m in metas]))
    return shares


def run_bench(cfg: BenchConfig, progress: bool = True) -> dict[str, Any]:
    """Run a benchmark and return its runs, summary rows, Markdown table and plot paths (``progress``: a bar over
    the runs)."""
    return Bench(cfg, progress).run()
