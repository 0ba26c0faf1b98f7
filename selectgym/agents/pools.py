"""Pools to train a policy over: suites drawn from chosen families with randomised settings, and their features.

A policy trained on one pool learns where that pool's good examples sit. Drawn over many pools whose
families, target shares, defect rates and sizes vary (domain randomisation), it has to learn what makes an
example useful. Each pool's target set is split in two: the observed features are aligned to ``val_a``, the
reward reads ``val_b``, so the reward never scores the target examples the features were aligned to.
Everything is cached under one folder; a killed build resumes at the next pool.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selectgym.data.suite import SuiteConfig, make_suite
from selectgym.data.targets import SPLIT, write_target_halves
from selectgym.errors import SelectgymError
from selectgym.proxies.feature_config import FeatureConfig
from selectgym.proxies.features import POOL_KINDS, features_for_pool
from selectgym.proxies.pipeline import compute_features, load_features
from selectgym.proxies.table import FeatureTable, merge_tables

log = logging.getLogger(__name__)


def pool_features() -> dict[str, list[str]]:
    """Pool file -> the features a training pool gets there: every registered feature but those that sample
    completions (too slow for many pools); pool kinds left with none are not computed."""
    kinds = {kind: features_for_pool(kind, rollouts=False) for kind in POOL_KINDS}
    return {kind: names for kind, names in kinds.items() if names}


@dataclass
class TrainingPools:
    """How the training pools are drawn: which families, how many pools, what varies between them."""

    families: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={
        "help": "reasoning-gym families the pools draw from, with their generator settings (YAML mapping)"})
    n_pools: int = field(default=6, metadata={"help": "pools to draw"})
    sizes: list[int] = field(default_factory=lambda: [200, 300, 400], metadata={"help": "pool sizes to draw from"})
    target_share: list[float] = field(default_factory=lambda: [0.2, 0.5], metadata={
        "help": "range of the share of target-family examples"})
    defect_rate: list[float] = field(default_factory=lambda: [0.15, 0.5], metadata={"help": "range of defect rates"})
    validation_size: int = field(default=64, metadata={"help": "target problems per pool (split in two halves)"})
    seed: int = field(default=1000, metadata={"help": "seed of the draw"})
    proxy: str = field(default="mini", metadata={"help": "proxy model that computes the features"})
    proj_dim: int = field(default=1024, metadata={"help": "gradient projection dimension"})

    def __post_init__(self) -> None:
        if len(self.families) < 2:
            raise SelectgymError("training pools need at least two families (one target, one off-target); list "
                                 "them under families")
        if not 0 <= self.seed < 2**31:
            raise SelectgymError(f"training_pools seed must be a whole number from 0 to {2**31 - 1}, got {self.seed}")
        if self.n_pools < 1 or not self.sizes or min(self.sizes) < 20:
            raise SelectgymError("n_pools must be >= 1 and sizes a list of pool sizes >= 20")
        for name in ("target_share", "defect_rate"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi <= 1:
                raise SelectgymError(f"{name} must be a range [low, high] inside [0, 1], got {getattr(self, name)}")

    def suites(self) -> list[SuiteConfig]:
        """The drawn pools: 1-2 target families and 2-4 off-target ones each, settings drawn in their ranges."""
        rng = random.Random(self.seed)
        names = sorted(self.families)
        out = []
        for i in range(self.n_pools):
            fams = rng.sample(names, min(len(names), rng.choice([3, 4, 5])))
            k = rng.choice([1, 2]) if len(fams) > 3 else 1
            out.append(SuiteConfig(seed=self.seed + i, size=rng.choice(self.sizes),
                                   validation_size=self.validation_size,
                                   target_share=round(rng.uniform(*self.target_share), 2),
                                   defect_rate=round(rng.uniform(*self.defect_rate), 2),
                                   target_tasks={f: self.families[f] for f in fams[:k]},
                                   off_target_tasks={f: self.families[f] for f in fams[k:]}))
        return out

    def feature_config(self, kind: str) -> FeatureConfig:
        """One feature config for every pool (seed 0), so a saved policy's schema check accepts them all."""
        return FeatureConfig(model=self.proxy, features=pool_features()[kind], proj_dim=self.proj_dim, seed=0)


def build_pool(suite: SuiteConfig, folder: Path, features: TrainingPools) -> tuple[FeatureTable, FeatureTable,
                                                                                    FeatureTable]:
    """Draw one pool into ``folder`` and compute its features: ``(train, val_a table, val_b table)``."""
    folder = Path(folder)
    files = folder / "suite"
    done = folder / "done.json"
    if done.exists() and json.loads(done.read_text()).get("split") != SPLIT:
        log.warning("pool in %s was built with an older target split: rebuilding it", folder)
        done.unlink()
    if not done.exists():
        make_suite(files, suite)
        write_target_halves(files / "validation.jsonl", files / "val_a.jsonl", files / "val_b.jsonl")
    kinds = pool_features()
    for kind in kinds:  # a finished store is reused; a feature registered since it was built is computed
        compute_features(files / f"{kind}.jsonl", files / "val_a.jsonl", features.feature_config(kind),
                         folder / "features" / kind, progress=False)
    compute_features(files / "sft.jsonl", files / "val_b.jsonl", features.feature_config("sft"),
                     folder / "features" / "sft_valb", progress=False)
    if not done.exists():
        done.write_text(json.dumps({"suite": asdict(suite), "split": SPLIT}, default=str))
    tables = {kind: load_features(folder / "features" / kind) for kind in kinds}
    _, val_b, _ = load_features(folder / "features" / "sft_valb")
    return merge_tables([train for train, _, _ in tables.values()]), tables["sft"][1], val_b


def pools_folder(cfg: TrainingPools) -> Path:
    """Where drawn pools of these settings are cached: one folder per settings under ``$SELECTGYM_CACHE/pools``."""
    from selectgym.utils import cache_dir, stable_hash

    return cache_dir() / "pools" / stable_hash(asdict(cfg))


def pool_texts(folder: str | Path, n_pools: int) -> list[dict[str, Any]]:
    """Each built pool's texts, for a reward that trains on them: its SFT examples (``pool``) and the half of its
    target the features never aimed at (``val_pool``)."""
    from selectgym.data.io import load_pool

    files = [Path(folder) / f"pool{i}" / "suite" for i in range(n_pools)]
    return [{"pool": load_pool(f / "sft.jsonl"), "val_pool": load_pool(f / "val_b.jsonl")} for f in files]


def build_pools(cfg: TrainingPools, folder: str | Path, progress: bool = False) -> list[tuple]:
    """Every drawn pool's ``(train, val_a, val_b)`` tables, built (or reused) under ``folder/pool<i>``."""
    from tqdm.auto import tqdm

    suites = cfg.suites()
    out = []
    for i, suite in enumerate(tqdm(suites, desc="training pools", unit="pool", disable=not progress)):
        log.info("pool %d: targets %s, off-target %s, %d examples", i, list(suite.target_tasks),
                 list(suite.off_target_tasks), suite.size)
        out.append(build_pool(suite, Path(folder) / f"pool{i}", cfg))
    return out
