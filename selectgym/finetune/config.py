"""``FinetuneConfig``: one dataclass for LoRA SFT, DPO and GRPO on a selection, and for re-selection during it.

TRL does the training; this config is what selectgym lets a user change, with the checks that involve
several fields done up front so a bad combination fails in a second with a message that says what to change.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selectgym.budget import check_budget
from selectgym.errors import SelectgymError
from selectgym.proxies.lora import ALL_LINEAR, LoraSpec
from selectgym.utils import check_device

METHODS = ("sft", "dpo", "grpo")
GRADALIGN_MODES = ("sim", "dot", "align", "learnalign", "accgreedy", "rand")
DEVICES = ("auto", "cpu", "cuda")
REPORTERS = ("none", "tensorboard")


@dataclass
class FinetuneConfig:
    """How to fine-tune the target model on a selection (defaults suit the tiny model on a CPU)."""

    method: str = field(default="sft", metadata={"help": "sft (prompt/completion), dpo (preference pairs) or grpo "
                                                         "(verifiable prompts)"})
    model: str = field(default="tiny", metadata={"help": "tiny, smollm2, a local HF folder or a .gguf file"})
    output_dir: str = field(default="runs/ft", metadata={"help": "where the adapter, checkpoints and logs go"})
    lr: float = field(default=2e-4, metadata={"help": "peak learning rate of the LoRA adapter"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the data (ignored when max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; -1 lets epochs decide"})
    batch_size: int = field(default=8, metadata={"help": "examples per device per step (grpo: completions)"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    max_length: int = field(default=256, metadata={"help": "tokens per example, prompt + response"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "share of steps with a linear LR warm-up"})
    lr_scheduler: str = field(default="linear", metadata={"help": "transformers LR schedule (linear, cosine, "
                                                                  "constant, ...)"})
    seed: int = field(default=0, metadata={"help": "seed of LoRA init, data order, sampling and re-selection"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (scaling = alpha / r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA input"})
    lora_targets: list[str] = field(default_factory=lambda: list(ALL_LINEAR), metadata={
        "help": "linear layers that get LoRA"})
    beta: float = field(default=0.1, metadata={"help": "DPO: beta, the strength of the implicit KL penalty"})
    kl_coef: float = field(default=0.0, metadata={"help": "GRPO: KL coefficient (0 = no reference model, TRL's "
                                                          "default)"})
    num_generations: int = field(default=4, metadata={"help": "GRPO: completions per prompt (the group)"})
    max_completion_length: int = field(default=16, metadata={"help": "GRPO: tokens per sampled completion"})
    temperature: float = field(default=1.0, metadata={"help": "GRPO: sampling temperature"})
    completion_reward: str = field(default="verifier", metadata={
        "help": "GRPO reward: 'verifier' (each problem's own checker) or a local reward-model folder"})
    use_vllm: bool = field(default=False, metadata={"help": "GRPO: generate with vLLM (colocated; needs vllm)"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present), cpu or cuda"})
    bf16: bool | None = field(default=None, metadata={"help": "bfloat16 mixed precision; default: on with a CUDA "
                                                               "GPU that supports it, off on CPU"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations (saves memory "
                                                                          "on big models, slower)"})
    logging_steps: int = field(default=1, metadata={"help": "steps between logged losses (the NaN check reads them)"})
    save_steps: int = field(default=0, metadata={"help": "steps between checkpoints; 0 keeps only the final adapter"})
    report_to: str = field(default="none", metadata={"help": "none or tensorboard (logs under output_dir/runs)"})
    progress: bool = field(default=False, metadata={"help": "show TRL's progress bar"})
    reselect: str = field(default="none", metadata={
        "help": "re-select during training: none, random, less or nice (sft), random (dpo), gradalign (grpo)"})
    budget: float = field(default=0.1, metadata={"help": "re-selection: examples trained on at a time, a share of "
                                                         "the pool in (0, 1) or a count"})
    warmup_step: int = field(default=10, metadata={"help": "re-selection: steps on a seeded random subset first"})
    update_step: int = field(default=10, metadata={"help": "re-selection: steps between re-selections (grpo: "
                                                           "GRPO steps per round, iters_per_select)"})
    update_times: int = field(default=2, metadata={"help": "re-selection: how many times (grpo: rounds)"})
    proj_dim: int = field(default=1024, metadata={"help": "re-selection: projection dimension of gradients"})
    rollouts: int = field(default=4, metadata={"help": "re-selection (nice, gradalign): samples per prompt"})
    chunk_size: int = field(default=0, metadata={"help": "gradalign: candidates scored per round (M); 0 = "
                                                         "budget * q"})
    q: int = field(default=4, metadata={"help": "gradalign: keep chunk_size // q of each round's chunk"})
    gradalign_mode: str = field(default="sim", metadata={"help": "gradalign: sim, dot, align, learnalign, "
                                                                 "accgreedy or rand"})

    def __post_init__(self) -> None:
        _choice("method", self.method, METHODS)
        check_device(self.device, DEVICES, gpu_index=False)
        _choice("report_to", self.report_to, REPORTERS)
        if self.reselect != "none" and not _reselects(self.reselect, self.method):
            _choice(f"reselect (for method {self.method})", self.reselect, reselect_choices(self.method))
        _choice("gradalign_mode", self.gradalign_mode, GRADALIGN_MODES)
        for name in ("batch_size", "grad_accum", "lora_r", "logging_steps", "num_generations",
                     "max_completion_length", "proj_dim", "rollouts", "q", "update_step"):
            if getattr(self, name) < 1:
                raise SelectgymError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("save_steps", "warmup_step", "update_times", "chunk_size"):
            if getattr(self, name) < 0:
                raise SelectgymError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise SelectgymError(f"lr must be a positive number, got {self.lr}")
        if self.max_length < 8:
            raise SelectgymError(f"--max-length {self.max_length} leaves no room for a prompt and a response; use more "
                                 f"tokens than your longest prompt takes with the chat template, like the default 256")
        if self.max_steps < 1 and self.max_steps != -1:
            raise SelectgymError(f"max_steps must be >= 1, or -1 to let epochs decide; got {self.max_steps}")
        if self.max_steps == -1 and self.epochs <= 0:
            raise SelectgymError("set epochs > 0 or max_steps >= 1")
        self.lora_spec()  # alpha and dropout are checked where LoRA's settings live
        if not 0 <= self.warmup_ratio < 1:
            raise SelectgymError(f"warmup_ratio must lie in [0, 1), got {self.warmup_ratio}")
        for name in ("epochs", "beta", "kl_coef", "temperature"):
            if not math.isfinite(getattr(self, name)):
                raise SelectgymError(f"--{name.replace('_', '-')} must be a number, got {getattr(self, name)}")
        _choice("lr_scheduler", self.lr_scheduler, _schedulers())
        self._check_method_fields()
        self._check_reselect()
        if self.bf16 and not self.uses_cuda:
            raise SelectgymError("bf16 needs a CUDA GPU here; drop --bf16 (training runs in float32 on CPU)")

    def _check_method_fields(self) -> None:
        if self.method == "dpo" and self.beta <= 0:
            raise SelectgymError(f"DPO beta must be > 0, got {self.beta}")
        if self.method != "grpo":
            return
        if self.kl_coef < 0 or self.temperature <= 0:
            raise SelectgymError(f"GRPO needs kl_coef >= 0 and temperature > 0, got {self.kl_coef} and "
                                 f"{self.temperature}")
        if self.num_generations < 2:
            raise SelectgymError("GRPO compares completions within a group; use num_generations >= 2")
        per_step = self.batch_size * self.grad_accum
        if per_step % self.num_generations:
            fits = [self.num_generations * m for m in range(1, 5)]
            raise SelectgymError(f"GRPO needs batch_size * grad_accum ({per_step}) divisible by num_generations="
                                 f"{self.num_generations}; use batch_size in {fits} (with grad_accum=1)")
        if self.completion_reward != "verifier" and not Path(self.completion_reward).is_dir():
            raise SelectgymError(f"completion_reward {self.completion_reward!r} is neither 'verifier' nor a local "
                                 f"reward-model folder; "
                                 "selectgym never downloads")
        if self.use_vllm and importlib.util.find_spec("vllm") is None:
            raise SelectgymError("use_vllm is set but vllm is not importable; install it (scripts/install_vllm.sh) "
                                 "or drop --use-vllm to generate with transformers")

    def _check_reselect(self) -> None:
        if self.reselect == "none":
            return
        check_budget(self.budget)
        if self.method == "grpo":
            return
        if self.update_times < 1 or self.warmup_step < 1:
            raise SelectgymError("reselect needs warmup_step >= 1 (steps on a random subset first) and "
                                 "update_times >= 1, or reselect=none")
        needed = self.warmup_step + self.update_step * self.update_times
        if self.max_steps == -1:
            self.max_steps = needed
        elif self.max_steps < self.warmup_step + self.update_step * (self.update_times - 1) + 1:
            raise SelectgymError(f"max_steps={self.max_steps} ends before the last re-selection; use max_steps >= "
                                 f"{needed} (warmup_step + update_step * update_times) or -1")

    @property
    def uses_cuda(self) -> bool:
        """Whether training runs on a CUDA GPU."""
        return self.device == "cuda" or (self.device == "auto" and _cuda_available())

    @property
    def use_bf16(self) -> bool:
        """bf16 as asked, else on for a CUDA GPU that supports it, never on CPU."""
        if self.bf16 is not None:
            return bool(self.bf16)
        if not self.uses_cuda:
            return False
        import torch

        return torch.cuda.is_bf16_supported()

    def lora_spec(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout,
                        target_modules=list(self.lora_targets))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reselect_choices(method: str) -> tuple[str, ...]:
    """``none`` and every selector whose class lists ``method`` in its ``reselects``: for sft/dpo a callback inside
    one training run, for grpo GradAlign's rounds (``selectgym.finetune.reselect``)."""
    from selectgym.selectors import SELECTORS

    return ("none", *SELECTORS.where(lambda cls: method in cls.reselects))


def _reselects(name: str, method: str) -> bool:
    from selectgym.selectors import SELECTORS, selector_class

    return name in SELECTORS and method in selector_class(name).reselects


def _choice(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise SelectgymError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _schedulers() -> list[str]:
    """transformers' LR schedule names (what ``lr_scheduler`` may be)."""
    from transformers import SchedulerType

    return [s.value for s in SchedulerType]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
