"""What several benchmark scripts share: the default policy's config and the transfer benchmark's pools, the
policies trained and applied the way ``selectgym`` does, picking by method, the oracle selections of the
sensitivity benchmark, and the headline's configs.

(The library's own harness, which runs a ``selectgym bench`` config and fine-tunes the target on a selection, is
``selectgym.bench.harness``.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.envelope import ROOT
from selectgym.agents.apply import apply_policy
from selectgym.agents.config import AgentConfig
from selectgym.agents.pools import TrainingPools
from selectgym.agents.train import train_agent
from selectgym.bench.config import BenchConfig
from selectgym.budget import resolve_budget
from selectgym.data.suite import SuiteConfig
from selectgym.selectors import get_selector

__all__ = ["BASELINES", "EVAL_POOLS", "FIDELITY_FAMILIES", "HEADLINE_CONFIGS", "HELD_OUT_FAMILIES", "KINDS",
           "POLICY_CONFIG", "TRAIN_FAMILIES", "PoolSpec", "bench_config", "pick", "policy_config", "selection",
           "train_policies", "training_pools"]


# -- the default policy and the transfer benchmark's pools -----------------------------------------------------
#: the default policy's config, the user-facing one: ``selectgym train-agent --config configs/policy_transfer.yaml``
POLICY_CONFIG = ROOT / "configs" / "policy_transfer.yaml"


def policy_config() -> dict[str, Any]:
    """The default policy's config (AgentConfig keys, ``training_pools`` among them)."""
    return yaml.safe_load(POLICY_CONFIG.read_text())


def training_pools() -> TrainingPools:
    """The default policy's training pools: drawn from the families its config lists (half of the 16 families
    ``mini`` was pretrained on), each with the same features as the evaluation pools."""
    return TrainingPools(**policy_config()["training_pools"])


TRAIN_FAMILIES: dict[str, dict[str, Any]] = training_pools().families
#: the other half of mini's families: held-out pools draw only from these
HELD_OUT_FAMILIES: dict[str, dict[str, Any]] = {
    "lcm": {}, "products": {}, "simple_equations": {}, "decimal_arithmetic": {}, "prime_factorization": {},
    "fraction_simplification": {}, "number_filtering": {}, "leg_counting": {},
}
#: two of the default policy's families that ``mini`` answers (gcd 0.28, letter_counting 0.31 before training): the
#: reward-fidelity benchmark's held-out pool aims at them, with off-target families from ``HELD_OUT_FAMILIES`` (on
#: which ``mini`` scores 0.00-0.04 before and after training: no accuracy to rank selections by), and the policies
#: ``benchmarks.accuracy.trained_policy`` trains leave them out of their training pools
FIDELITY_FAMILIES: dict[str, dict[str, Any]] = {"gcd": {}, "letter_counting": {}}
assert not set(TRAIN_FAMILIES) & set(HELD_OUT_FAMILIES)


@dataclass(frozen=True)
class PoolSpec:
    """One kind of evaluation pool: its target and off-target families, target share and defect rate. Each is drawn
    once per seed and gets the training pools' features (``selectgym.agents.pools.build_pool``)."""

    name: str
    target: tuple[str, ...]
    off_target: tuple[str, ...]
    held_out: bool
    target_share: float = 0.35
    defect_rate: float = 0.3
    size: int = 300

    @property
    def families(self) -> list[str]:
        return [*self.target, *self.off_target]

    def suite_config(self, seed: int, validation_size: int = 64) -> SuiteConfig:
        table = {**TRAIN_FAMILIES, **HELD_OUT_FAMILIES, **FIDELITY_FAMILIES}
        return SuiteConfig(seed=seed, size=self.size, validation_size=validation_size,
                           target_share=self.target_share, defect_rate=self.defect_rate,
                           target_tasks={f: table[f] for f in self.target},
                           off_target_tasks={f: table[f] for f in self.off_target})


#: the pools the transfer benchmark scores methods on: one in the policy's training families, three held out
EVAL_POOLS = (
    PoolSpec("suite", ("basic_arithmetic", "chain_sum"), ("spell_backward", "letter_counting", "gcd", "count_bits"),
             held_out=False),
    PoolSpec("heldout_products_lcm", ("products", "lcm"), ("prime_factorization", "number_filtering"), held_out=True),
    PoolSpec("heldout_decimal_equations", ("decimal_arithmetic", "simple_equations"),
             ("fraction_simplification", "leg_counting"), held_out=True),
    PoolSpec("heldout_noisy", ("leg_counting", "number_filtering"), ("products", "lcm"), held_out=True,
             defect_rate=0.5),
)


# -- policies and picks ----------------------------------------------------------------------------------------
def train_policies(triples: list[tuple], weights: dict | None, budget: float, seed: int, out: Path,
                   only: tuple[str, ...] | None = None) -> dict[str, Path]:
    """The default policy as ``selectgym train-agent --config configs/policy_transfer.yaml`` trains it (agent seed
    ``seed``) on ``triples`` (``(train, val, reward_val)`` tables, one per training pool), its lever variants
    (``weights``: the ``learned`` reward's), and the cluster baselines, each saved once under ``out``
    (``only``: just these). Returns their paths by name."""
    settings = {k: v for k, v in policy_config().items() if k != "training_pools"}
    base = {**settings, "budget": budget, "progress_bar": False, "eval_freq": 0, "seed": seed}
    largest = max(range(len(triples)), key=lambda i: len(triples[i][0]))
    variants = {
        "policy": (base, triples),
        "policy_mean_alignment": ({**base, "alignment_target": "mean"}, triples),
        "policy_with_loss": ({**base, "observe": ["alignment", "loss"]}, triples),
        "policy_with_loss_length": ({**base, "observe": ["alignment", "loss", "length"]}, triples),
        "policy_all_features": ({**base, "observe": None}, triples),
        "policy_one_pool": (base, [triples[largest]]),
        "policy_learned": ({**base, "reward": "learned", "reward_kwargs": {"weights": weights}}, triples),
    }
    paths = {}
    for name, (kwargs, pools) in variants.items():
        if only is not None and name not in only:
            continue
        path = out / f"{name}-s{seed}.zip"
        if not path.exists():
            started = time.perf_counter()
            (train, val, reward_val), rest = pools[0], pools[1:]
            train_agent(AgentConfig(**kwargs), train, val, out=path, pools=rest, reward_val_table=reward_val)
            path.with_suffix(".seconds").write_text(f"{time.perf_counter() - started:.1f}")
        paths[name] = path
    train, val, _ = triples[largest]
    for name, env_id, algo in (("feature_select", "selectgym/FeatureSelect-v0", "ppo"),
                               ("cluster_select", "selectgym/ClusterSelect-v0", "maskable_ppo")):
        if only is not None and name not in only:
            continue
        path = out / f"{name}-s{seed}.zip"
        if not path.exists():
            train_agent(AgentConfig(env_id=env_id, algo=algo, timesteps=10_000, budget=budget, eval_freq=0,
                                    progress_bar=False, seed=seed), train, val, out=path)
        paths[name] = path
    return paths


def pick(method: str, train, val, budget: float, seed: int, paths: dict[str, Path],
         subtasks: list[str] | None = None) -> list[int]:
    """Rows ``method`` selects (policies in ``paths`` are applied like ``selectgym select --policy``). A
    ``_balanced`` method shares the budget among the target's subtasks (``subtasks``: one label per row of
    ``val``); ``less_sgd`` reads SGD gradients, ``..._minus_loss`` subtracts the z-scored loss from the score."""
    k = resolve_budget(budget, len(train))
    rng = np.random.default_rng(seed)
    balanced = method.endswith("_balanced")
    method = method.removesuffix("_balanced")
    if balanced and subtasks is None:
        raise ValueError(f"{method}_balanced needs the target's subtask labels")
    index = {i: n for n, i in enumerate(train.ids)}
    if method in paths:
        sel = apply_policy(paths[method], budget=budget, seed=seed, table=train, val_table=val,
                           subtasks=subtasks if balanced else None)
        return [index[i] for i in sel.ids]
    if method == "random":
        return list(rng.choice(len(train), k, replace=False))
    gradient = "sgd" if method.startswith("less_sgd") else "adam"
    if balanced:
        if method not in ("less", "less_sgd"):
            raise ValueError(f"no balanced form of {method}")
        sel = get_selector("less", gradient_type=gradient, subtasks=subtasks, balance=True).select(train, val, k, seed)
        return [index[i] for i in sel.ids]
    if method.startswith("less"):
        loss_weight = 1.0 if method.endswith("minus_loss") else 0.0
        score = get_selector("less", gradient_type=gradient, loss_weight=loss_weight).score(train, val, rng)
    else:
        score = get_selector(method).score(train, val, rng)
    return list(np.argsort(-score, kind="stable")[:k])


# -- oracle selections (ground truth, read for measuring only) -------------------------------------------------
KINDS = ("clean", "defective", "random")


def selection(pool, kind: str, n: int, seed: int) -> list[str]:
    """``n`` ids of one kind, drawn with ``seed``: ``clean`` (clean examples of the target families),
    ``defective`` (target-family examples with a defect) or ``random`` (any examples)."""
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    if kind == "clean":
        ids = [ex.id for ex in pool if ex.meta["on_target"] and ex.meta["clean"]]
    elif kind == "defective":
        ids = [ex.id for ex in pool if ex.meta["on_target"] and not ex.meta["clean"]]
    else:
        ids = list(pool.ids)
    if len(ids) < n:
        raise SystemExit(f"only {len(ids)} {kind} examples in the pool, {n} needed: raise --size")
    return [ids[i] for i in sorted(rng.choice(len(ids), n, replace=False))]


# -- the headline ----------------------------------------------------------------------------------------------
_ACCURACY = Path(__file__).resolve().parent / "accuracy"
#: the headline's four benchmarks (``selectgym bench`` configs), by the name its results file gives each
HEADLINE_CONFIGS = {"mini": _ACCURACY / "bench_headline.yaml",
                    "smollm2": _ACCURACY / "bench_headline_smollm2_proxy.yaml",
                    "pool_policy": _ACCURACY / "bench_headline_pool_policy.yaml",
                    "pool_policy_balanced": _ACCURACY / "bench_headline_pool_policy_balanced.yaml"}
#: the methods that read no proxy: their runs hold for any build of it
BASELINES = ("random", "full")


def bench_config(path: str | Path) -> BenchConfig:
    """The ``selectgym bench`` config in a YAML file."""
    return BenchConfig(**yaml.safe_load(Path(path).read_text()))
