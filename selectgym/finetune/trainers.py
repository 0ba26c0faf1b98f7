"""TRL trainers for the target, configured from a ``FinetuneConfig``: SFT, DPO or GRPO with a LoRA adapter.

Shared by ``train.train`` (one run) and ``reselect`` (GradAlign's rounds, one trainer per round), so neither
imports the other.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from selectgym.data import Pool
from selectgym.errors import SelectgymError
from selectgym.finetune.config import FinetuneConfig
from selectgym.finetune.trl_data import DATASETS
from selectgym.proxies.lora import check_targets

log = logging.getLogger(__name__)


class NanGuard(TrainerCallback):
    """Stop at the first non-finite logged loss or gradient norm with a one-line error.

    It raises out of ``trainer.train()``, so nothing is saved over what is already on disk: checkpoints
    written before the NaN stay as they were. ``logging_nan_inf_filter`` is off in ``training_args`` so that
    the Trainer reports a NaN instead of smoothing it away.
    """

    def __init__(self, output_dir: str | os.PathLike) -> None:
        self.output_dir = str(output_dir)

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                raise SelectgymError(f"training {key} became {value} at step {state.global_step}; lower --lr (now "
                                     f"{args.learning_rate:g}) or check the data for empty or huge responses; "
                                     f"checkpoints saved so far are kept in {self.output_dir}")


class LogMetrics(TrainerCallback):
    """Send the Trainer's logged metrics to ``logging`` (library code does not print)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in (logs or {}).items()}
        log.info("step %d: %s", state.global_step, shown)


class TrlVerifierReward:
    """GRPO reward: each completion scored by its own problem's verifier (reasoning-gym or exact match).

    TRL passes the dataset's extra columns to reward functions, so the example ``id`` column finds the problem.
    """

    __name__ = "verifier"

    def __init__(self, pool: Pool) -> None:
        self.by_id = {ex.id: ex for ex in pool}

    def __call__(self, prompts, completions, **columns) -> list[float]:
        from selectgym.data.verify import score

        ids = columns.get("id")
        if ids is None:
            raise SelectgymError("the GRPO dataset lost its 'id' column; build it with selectgym.finetune.trl_data")
        return [score(self.by_id[i], _text(c)) for i, c in zip(ids, completions, strict=True)]


def _text(completion) -> str:
    """A TRL completion (conversational: a list of messages) as plain text."""
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


def training_args(cfg: FinetuneConfig, cls, **extra: Any):
    """TRL's ``*Config`` for this run: device, precision, logging and saving from ``cfg``."""
    return cls(output_dir=cfg.output_dir, learning_rate=cfg.lr, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
               per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
               lr_scheduler_type=cfg.lr_scheduler, warmup_steps=float(cfg.warmup_ratio), seed=cfg.seed,
               data_seed=cfg.seed,
               logging_steps=cfg.logging_steps, logging_nan_inf_filter=False,
               save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
               report_to=[] if cfg.report_to == "none" else [cfg.report_to], use_cpu=not cfg.uses_cuda,
               bf16=cfg.use_bf16, gradient_checkpointing=cfg.gradient_checkpointing, disable_tqdm=not cfg.progress,
               dataloader_num_workers=0, **extra)


def grpo_reward(cfg: FinetuneConfig, pool: Pool):
    """The verifier reward function, or the path of a local reward model (TRL loads it)."""
    return TrlVerifierReward(pool) if cfg.completion_reward == "verifier" else str(cfg.completion_reward)


def build_trainer(cfg: FinetuneConfig, pool: Pool, model, tokenizer, callbacks: Sequence[TrainerCallback] = (),
                  peft: bool = True):
    """The configured TRL trainer for ``cfg.method`` on ``pool`` (not yet trained).

    ``peft=False`` when ``model`` already carries the adapter (GradAlign's rounds keep training one adapter).
    """
    if peft:
        check_targets(model, cfg.lora_targets)
    peft_config = cfg.lora_spec().to_peft() if peft else None
    dataset = DATASETS[cfg.method](pool)
    cbs = [NanGuard(cfg.output_dir), LogMetrics(), *callbacks]
    common = {"model": model, "train_dataset": dataset, "processing_class": tokenizer, "peft_config": peft_config,
              "callbacks": cbs}
    if cfg.method == "sft":
        from trl import SFTConfig, SFTTrainer

        return _quiet(SFTTrainer(args=training_args(cfg, SFTConfig, max_length=cfg.max_length), **common))
    if cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = training_args(cfg, DPOConfig, beta=cfg.beta, max_length=cfg.max_length)
        return _quiet(DPOTrainer(args=args, **common))
    from trl import GRPOConfig, GRPOTrainer

    extra: dict[str, Any] = {"vllm_mode": "colocate"} if cfg.use_vllm else {}
    args = training_args(cfg, GRPOConfig, num_generations=cfg.num_generations, beta=cfg.kl_coef,
                         max_completion_length=cfg.max_completion_length, temperature=cfg.temperature,
                         use_vllm=cfg.use_vllm, **extra)
    return _quiet(GRPOTrainer(reward_funcs=[grpo_reward(cfg, pool)], args=args, **common))


def _quiet(trainer):
    """Without a progress bar the Trainer prints every log line; ``LogMetrics`` logs them instead."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer
