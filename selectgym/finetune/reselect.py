"""Re-selecting the training data while the target trains (DataFlex's dynamic selection, GradAlign's rounds).

SFT / DPO: a ``TrainerCallback``, not a fork of the training loop. The trainer's data becomes an
``ActiveSubset``: an endless, seeded stream over the rows whose ids are currently active. Training starts
on a seeded random subset of the budget size (the warm-up); after step ``warmup_step`` and then every
``update_step`` steps, ``update_times`` times in all, the callback calls
``rescore(model, tokenizer, optimizer, pool, step) -> ids`` with the live model and optimizer, swaps the
active ids and ends the Trainer's epoch. Ending the epoch matters: accelerate's data loader fetches one batch
ahead, and the new epoch's fresh iterator drops that batch, so step ``s + 1`` already trains on the new
subset. The stream has no length, so the Trainer runs by ``max_steps`` over as many such epochs as needed.

GRPO: GradAlign's rounds as a loop over ``GRPOTrainer.train`` calls on successive subsets. Round ``r``
scores chunk ``r`` of a seeded shuffle of the pool (``chunk_size`` problems) with the current policy's GRPO
gradients, keeps ``chunk_size // q`` with ``GradAlignSelector``, and trains ``update_step`` GRPO steps on
them. One adapter trains through every round; each round gets a fresh trainer, and so a fresh optimizer and
LR schedule, as in the paper's code, which relaunches training from the merged model each round.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from selectgym.budget import resolve_budget
from selectgym.data.pool import Pool
from selectgym.errors import SelectgymError
from selectgym.finetune.trainers import build_trainer
from selectgym.proxies.feature_config import FeatureConfig
from selectgym.proxies.lora import attach_lora
from selectgym.proxies.models import load_model
from selectgym.proxies.proxy import Proxy
from selectgym.proxies.rewards import RewardModelReward, VerifierReward
from selectgym.proxies.rollouts import TransformersGenerator
from selectgym.proxies.table import FeatureTable
from selectgym.selectors import get_selector
from selectgym.selectors.gradalign import GradAlignSelector

log = logging.getLogger(__name__)

#: ``rescore(model, tokenizer, optimizer, pool, step) -> ids to train on next``
Rescore = Callable[[Any, Any, Any, Pool, int], Sequence[str]]


class ActiveSubset(torch.utils.data.IterableDataset):
    """An endless stream of the rows whose ids are active, reshuffled (seeded) on every pass.

    ``rows`` is the trainer's prepared dataset and ``ids[i]`` the pool id of ``rows[i]``. Each new iterator
    starts a fresh pass over the ids active at that moment.
    """

    def __init__(self, rows, ids: Sequence[str], seed: int = 0) -> None:
        if len(rows) != len(ids):
            raise SelectgymError(f"{len(rows)} prepared rows but {len(ids)} ids; keep the 'id' column in the dataset")
        self.rows, self.ids, self.seed = rows, list(ids), int(seed)
        self.position = {ex_id: i for i, ex_id in enumerate(self.ids)}
        self.active: list[str] = []
        self.version = 0

    def set_active(self, ids: Sequence[str]) -> None:
        """Train on these ids from the next pass on."""
        ids = list(ids)
        missing = [i for i in ids if i not in self.position]
        if missing:
            raise SelectgymError(f"{len(missing)} selected ids are not in the training rows (first: {missing[0]!r}); "
                                 "they are not in the pool, or TRL dropped them while preparing it (too long?)")
        if len(set(ids)) != len(ids) or not ids:
            raise SelectgymError(f"a selection must list distinct ids and at least one; got {len(ids)} "
                                 f"({len(set(ids))} distinct)")
        self.active = ids
        self.version += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.active:
            raise SelectgymError("no active examples; call set_active before training")
        active, version = list(self.active), self.version
        for n_pass in range(2**62):
            rng = np.random.default_rng([self.seed, version, n_pass])
            for i in rng.permutation(len(active)):
                yield self.rows[self.position[active[i]]]


def schedule(warmup_step: int, update_step: int, update_times: int) -> list[int]:
    """The global steps after which the subset is re-selected."""
    return [warmup_step + j * update_step for j in range(update_times)]


class ReselectCallback(TrainerCallback):
    """Swap the ``ActiveSubset`` for ``rescore``'s choice at the ``schedule`` steps."""

    def __init__(self, subset: ActiveSubset, pool: Pool, rescore: Rescore, tokenizer, *, budget: int,
                 warmup_step: int, update_step: int, update_times: int, seed: int = 0) -> None:
        if not 1 <= budget <= len(subset.ids):
            raise SelectgymError(f"budget must lie in [1, {len(subset.ids)}] (the training rows), got {budget}")
        self.subset, self.pool, self.rescore, self.tokenizer = subset, pool, rescore, tokenizer
        self.budget = budget
        self.steps = schedule(warmup_step, update_step, update_times)
        rng = np.random.default_rng(seed)
        first = [subset.ids[i] for i in sorted(rng.choice(len(subset.ids), size=budget, replace=False))]
        subset.set_active(first)
        self.history: list[dict[str, Any]] = [{"step": 0, "scorer": "random", "ids": first}]

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if state.global_step not in self.steps:
            return control
        ids = list(self.rescore(model, self.tokenizer, optimizer, self.pool, state.global_step))
        if len(ids) != self.budget:
            raise SelectgymError(f"the re-selection at step {state.global_step} returned {len(ids)} ids; it must "
                                 f"return the budget, {self.budget}")
        self.subset.set_active(ids)
        self.history.append({"step": state.global_step, "scorer": getattr(self.rescore, "name", "custom"),
                             "ids": ids})
        log.info("step %d: re-selected %d examples", state.global_step, len(ids))
        control.should_epoch_stop = True  # a fresh iterator drops the batch fetched ahead from the old subset
        return control


def install(trainer, pool: Pool, rescore: Rescore, tokenizer, cfg) -> ReselectCallback:
    """Make ``trainer`` train on an ``ActiveSubset`` of its prepared dataset, re-selected by ``rescore``."""
    rows = trainer.train_dataset
    subset = ActiveSubset(rows, rows["id"], seed=cfg.seed)
    kept = set(subset.ids)
    if len(kept) < len(pool):
        log.warning("%d of %d examples did not survive TRL's preparation (too long for max_length?); re-selection "
                    "chooses among the other %d", len(pool) - len(kept), len(pool), len(kept))
    trainable = pool.subset([i for i in pool.ids if i in kept])
    callback = ReselectCallback(subset, trainable, rescore, tokenizer, budget=resolve_budget(cfg.budget, len(pool)),
                                warmup_step=cfg.warmup_step, update_step=cfg.update_step,
                                update_times=cfg.update_times, seed=cfg.seed)
    trainer.train_dataset = subset
    trainer.add_callback(callback)
    return callback


@dataclass
class RandomRescore:
    """The baseline: a fresh seeded random subset of the budget size at every re-selection."""

    budget: int
    seed: int = 0
    name: str = "random"

    def __call__(self, model, tokenizer, optimizer, pool: Pool, step: int) -> list[str]:
        rng = np.random.default_rng([self.seed, step])
        return [pool.ids[i] for i in sorted(rng.choice(len(pool), size=self.budget, replace=False))]


def _torch_optimizer(optimizer):
    """The torch optimizer under accelerate's wrapper (it holds the Adam moments)."""
    from accelerate.optimizer import AcceleratedOptimizer

    return optimizer.optimizer if isinstance(optimizer, AcceleratedOptimizer) else optimizer


@dataclass
class GradientRescore:
    """LESS or NICE scores from the live model: its Adam-normalised training gradients (the optimizer's moments)
    against the target's SFT gradients (``less``) or on-policy policy gradients (``nice``), then the selector's
    top ``budget``."""

    target: Pool
    budget: int
    name: str = "less"
    proj_dim: int = 1024
    seed: int = 0
    batch_size: int = 8
    max_length: int = 256
    rollouts: int = 4
    max_new_tokens: int = 16

    def __post_init__(self) -> None:
        if self.name not in ("less", "nice"):
            raise SelectgymError(f"gradient re-selection scores with less or nice, not {self.name!r}")

    def __call__(self, model, tokenizer, optimizer, pool: Pool, step: int) -> list[str]:
        cfg = FeatureConfig(features=["grad", "grad_adam", *(["nice"] if self.name == "nice" else [])],
                            proj_dim=self.proj_dim, seed=self.seed, batch_size=self.batch_size,
                            max_length=self.max_length, rollouts=self.rollouts, max_new_tokens=self.max_new_tokens,
                            temperature=1.0)
        proxy = Proxy(cfg, model, tokenizer, optimizer=_torch_optimizer(optimizer), reward=VerifierReward(),
                      generator=TransformersGenerator(model, tokenizer))
        train = proxy.sft_grads(pool.examples, adam=True)["grad_adam"]
        if self.name == "less":
            val = proxy.val_grads(self.target.examples)
        else:
            val = cfg.feature("nice").val(proxy, self.target.examples, {})
        selection = get_selector(self.name).select(FeatureTable(pool.ids, {"grad_adam": train}),
                                                   FeatureTable(self.target.ids, val), self.budget, self.seed + step)
        return list(selection.ids)


def make_rescore(cfg, target: Pool | None, pool_size: int) -> Rescore:
    """The scorer ``cfg.reselect`` names (``random``, ``less`` or ``nice``) for a pool of ``pool_size``."""
    budget = resolve_budget(cfg.budget, pool_size)
    if cfg.reselect == "random":
        return RandomRescore(budget, cfg.seed)
    if target is None:
        raise SelectgymError(f"reselect={cfg.reselect} scores against a target set; pass one with --eval")
    return GradientRescore(target, budget, cfg.reselect, proj_dim=cfg.proj_dim, seed=cfg.seed,
                           batch_size=cfg.batch_size, max_length=cfg.max_length, rollouts=cfg.rollouts,
                           max_new_tokens=cfg.max_completion_length)


# -- GradAlign's rounds for GRPO ----------------------------------------------------------------------------------
def gradalign_round_table(model, tokenizer, chunk: Pool, target: Pool | None, cfg, reward, seed: int):
    """``(train, val)`` feature tables of one round: GRPO gradients, reward signal and pass rates."""
    features = FeatureConfig(features=["grpo"], proj_dim=cfg.proj_dim, seed=cfg.seed, batch_size=cfg.batch_size,
                             max_length=cfg.max_length, rollouts=cfg.rollouts, temperature=cfg.temperature,
                             max_new_tokens=cfg.max_completion_length)
    proxy = Proxy(features, model, tokenizer, reward=reward, generator=TransformersGenerator(model, tokenizer))
    grads, signal, pass_rate = proxy.grpo(chunk.examples, seed)
    train = FeatureTable(chunk.ids, {"grpo_grad": grads, "grpo_signal": signal, "pass_rate": pass_rate})
    val = None
    if cfg.gradalign_mode in ("sim", "dot"):
        if target is None:
            raise SelectgymError(f"gradalign mode {cfg.gradalign_mode} aligns with a target set; pass one with --eval "
                                 "or use gradalign_mode=align")
        v_grads, _, v_pass = proxy.grpo(target.examples, seed + 1)
        val = FeatureTable(target.ids, {"grpo_grad": v_grads, "pass_rate": v_pass})
    return train, val


def gradalign_rounds(cfg, pool: Pool, target: Pool | None, callbacks: Sequence[TrainerCallback] = ()):
    """GradAlign: ``cfg.update_times`` rounds of score chunk -> keep ``chunk_size // q`` -> ``update_step`` GRPO
    steps. Returns ``(model, tokenizer, total steps, selections, log history of every round)``."""

    keep = resolve_budget(cfg.budget, len(pool))
    chunk_size = cfg.chunk_size or keep * cfg.q
    prompts_per_step = cfg.batch_size * cfg.grad_accum // cfg.num_generations
    selector = GradAlignSelector(mode=cfg.gradalign_mode, chunk_size=chunk_size, q=cfg.q, batch_size=prompts_per_step,
                                 iters_per_select=cfg.update_step)
    if cfg.update_times * chunk_size > len(pool):
        raise SelectgymError(f"{cfg.update_times} rounds of chunk_size={chunk_size} need "
                             f"{cfg.update_times * chunk_size} problems but the pool has {len(pool)}; lower "
                             "update_times, budget or q")
    model, tokenizer = load_model(cfg.model)
    model = attach_lora(model, cfg.lora_spec(), seed=cfg.seed)
    reward = VerifierReward() if cfg.completion_reward == "verifier" else RewardModelReward(cfg.completion_reward)
    order = np.random.default_rng(cfg.seed).permutation(len(pool))
    round_cfg = dataclasses.replace(cfg, max_steps=cfg.update_step)
    selections: list[dict[str, Any]] = []
    log_history: list[dict[str, Any]] = []
    step = 0
    for r in range(cfg.update_times):
        chunk = pool.subset([pool.ids[i] for i in order[r * chunk_size:(r + 1) * chunk_size]])
        train_table, val_table = gradalign_round_table(model, tokenizer, chunk, target, cfg, reward,
                                                       seed=cfg.seed + 1000 * r)
        picked = list(selector.select(train_table, val_table, chunk_size // cfg.q, cfg.seed + r).ids)
        selections.append({"round": r, "step": step, "scorer": f"gradalign:{cfg.gradalign_mode}",
                           "chunk": chunk.ids, "ids": picked})
        log.info("GradAlign round %d: kept %d of %d problems", r, len(picked), len(chunk))
        trainer = build_trainer(round_cfg, pool.subset(picked), model, tokenizer, callbacks, peft=False)
        trainer.train()
        model = trainer.model
        step += trainer.state.global_step
        selections[-1]["trained_steps"] = trainer.state.global_step
        log_history.extend({**entry, "round": r, "step": entry.get("step", 0) + selections[-1]["step"]}
                           for entry in trainer.state.log_history)
    return model, tokenizer, step, selections, log_history
