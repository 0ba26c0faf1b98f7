"""Train the target on a selection with TRL (SFTTrainer, DPOTrainer, GRPOTrainer) and a peft LoRA adapter.

Nothing here is a training loop: each method is TRL's trainer, configured from ``FinetuneConfig``, with
selectgym's pools converted to TRL's dataset formats, a NaN guard, and (optionally) re-selection of the
training subset as a callback (``selectgym.finetune.reselect``). The adapter is saved with a small sidecar
naming the base model, so ``merge_and_export`` can rebuild the base without guessing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from selectgym.data import Pool
from selectgym.data.checks import log_report
from selectgym.data.verify import verifier_report
from selectgym.errors import SelectgymError
from selectgym.finetune import reselect
from selectgym.finetune.config import FinetuneConfig
from selectgym.finetune.evaluate import check_evaluable, evaluate
from selectgym.finetune.trainers import build_trainer
from selectgym.finetune.trl_data import as_pool, check_max_length
from selectgym.proxies.models import load_model, load_tokenizer
from selectgym.utils import atomic_dir, write_json

log = logging.getLogger(__name__)

ADAPTER = "adapter"
SIDECAR = "selectgym_finetune.json"


@dataclass
class FinetuneResult:
    """The trained peft model, its tokenizer, where the adapter went, metrics and the training log."""

    model: Any
    tokenizer: Any
    adapter_dir: Path
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    log_history: list[dict[str, Any]] = field(default_factory=list)
    selections: list[dict[str, Any]] = field(default_factory=list)
    trainer: Any = None  # the TRL trainer (None after GradAlign's rounds, which use one per round)


def save_adapter(model, tokenizer, cfg: FinetuneConfig) -> Path:
    """Save the adapter, tokenizer and a sidecar naming the base model; published by one rename."""
    final = Path(cfg.output_dir) / ADAPTER
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / SIDECAR, {"base_model": cfg.model, "config": cfg.to_dict()})
    return final


def train(cfg: FinetuneConfig, data: Pool | str | os.PathLike, eval_pool: Pool | str | os.PathLike | None = None,
          callbacks: Sequence[TrainerCallback] = (), rescore=None) -> FinetuneResult:
    """Fine-tune ``cfg.model`` on ``data`` with ``cfg.method``; the adapter goes to ``cfg.output_dir/adapter``.

    Before any model loads, GRPO with the verifier refuses a pool whose verifier can score none of its examples
    (``verify.verifier_report``); ``selectgym finetune`` also names degenerate data (``selectgym.data.checks``),
    which a benchmark fine-tuning on many subsets of one pool would repeat at every run.
    With ``eval_pool`` the result's metrics include ``evaluate`` on it. With ``cfg.reselect`` set, training
    runs on a budget-sized subset that is re-selected during training (``rescore`` overrides the scorer the
    config names; see ``selectgym.finetune.reselect``); for GRPO that is GradAlign's rounds.
    """
    pool = as_pool(data)
    target = as_pool(eval_pool) if eval_pool is not None else None
    if target is not None:
        check_evaluable(target)  # before training, not after
    if cfg.method == "grpo" and cfg.completion_reward == "verifier":
        log_report(verifier_report(pool, pool.source))  # refuses a pool the verifier can score none of
    start = time.perf_counter()
    if cfg.method == "grpo" and cfg.reselect == "gradalign":
        model, tokenizer, steps, selections, history = reselect.gradalign_rounds(cfg, pool, target, callbacks)
        trainer = None
    else:
        if cfg.method in ("sft", "dpo"):  # the tokenizer tells a max_length nothing fits in, before the model loads
            check_max_length(pool, load_tokenizer(cfg.model), cfg.max_length)
        model, tokenizer = load_model(cfg.model)
        trainer = build_trainer(cfg, pool, model, tokenizer, callbacks)
        selections = []
        if cfg.reselect != "none":
            scorer = rescore or reselect.make_rescore(cfg, target, len(pool))
            callback = reselect.install(trainer, pool, scorer, tokenizer, cfg)
            selections = callback.history
        trainer.train()
        model, steps, history = trainer.model, trainer.state.global_step, list(trainer.state.log_history)
    seconds = time.perf_counter() - start
    adapter_dir = save_adapter(model, tokenizer, cfg)
    losses = [h["loss"] for h in history if "loss" in h]
    metrics: dict[str, Any] = {"method": cfg.method, "steps": steps, "train_seconds": seconds,
                               "final_loss": losses[-1] if losses else None, "n_train": len(pool)}
    if target is not None:
        metrics.update(evaluate(model, tokenizer, target, max_new_tokens=cfg.max_completion_length))
    write_json(Path(cfg.output_dir) / "metrics.json", {**metrics, "selections": selections})
    log.info("%s on %d examples: %d steps in %.1f s; adapter in %s", cfg.method, len(pool), steps, seconds,
             adapter_dir)
    return FinetuneResult(model, tokenizer, adapter_dir, seconds, metrics, history, selections, trainer)


def merge_and_export(adapter_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Merge a saved LoRA adapter into its base model and save the full model and tokenizer to ``out_dir``.

    The base comes from the adapter's sidecar (``tiny``, ``smollm2`` or a local folder), loaded as in training.
    """
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    sidecar = adapter_dir / SIDECAR
    if not sidecar.exists():
        raise SelectgymError(f"{adapter_dir} has no {SIDECAR}; pass the adapter folder `selectgym finetune` wrote "
                             "(<out>/adapter)")
    base_name = json.loads(sidecar.read_text(encoding="utf-8"))["base_model"]
    base, tokenizer = load_model(base_name)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out
