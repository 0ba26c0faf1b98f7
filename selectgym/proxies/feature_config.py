"""``FeatureConfig``: everything that decides the features' values (it is hashed into the store's key)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from selectgym.errors import SelectgymError
from selectgym.proxies.dpo import REDUCTIONS as DPO_REDUCTIONS
from selectgym.proxies.features import FEATURES
from selectgym.proxies.gradients import ADAM_EPS_FORMS, GRADIENT_TYPES
from selectgym.proxies.lora import ALL_LINEAR, LoraSpec
from selectgym.proxies.policy_grad import BASELINES, POLICIES
from selectgym.proxies.projection import PROJECTIONS
from selectgym.proxies.rewards import KINDS as COMPLETION_REWARDS
from selectgym.proxies.store import GRAD_DTYPES
from selectgym.utils import check_device

#: rollout backends a feature run may name ("auto" is for finetune's model paths)
ROLLOUT_BACKENDS = ("transformers", "vllm", "openai")

#: keys an older selectgym wrote in configs and stores -> today's names (one vocabulary across commands)
RENAMED = {"dim": "proj_dim", "k": "rollouts", "baseline": "nice_baseline", "policy": "nice_policy",
           "threshold": "nice_threshold", "topk": "nice_topk", "lora_target_modules": "lora_targets",
           "reward": "completion_reward", "reward_kwargs": "completion_reward_kwargs"}


def current_names(values: dict[str, Any]) -> dict[str, Any]:
    """A stored config's settings under today's key names (``RENAMED``)."""
    return {RENAMED.get(k, k): v for k, v in values.items()}


@dataclass
class FeatureConfig:
    """Everything that decides the features' values (it is hashed into the store's key)."""

    model: str = field(default="tiny", metadata={
        "help": "proxy model: tiny, mini (pretrained here on the task world), smollm2, a local HF folder or a .gguf"})
    features: list[str] | None = field(default=None, metadata={
        "help": f"features to compute, of {', '.join(FEATURES)} (default: grad, grad_adam if gradient_type is "
                f"adam, loss, length, embedding)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank of the proxy"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (scaling alpha/r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout during warm-up"})
    lora_targets: list[str] = field(default_factory=lambda: list(ALL_LINEAR), metadata={
        "help": "linear layers that get LoRA adapters"})
    warmup_steps: int = field(default=20, metadata={
        "help": "AdamW steps on a random share of the pool before features (LESS warm-up; 0 = none)"})
    warmup_epochs: int = field(default=0, metadata={
        "help": "LESS's schedule instead of warmup_steps: this many epochs over the warm-up share (linear LR decay), "
                "gradients at the end of each epoch (arrays name@1, name@2, ...) weighted by the epoch's mean LR; "
                "LESS uses 4 (0 = one checkpoint after warmup_steps)"})
    warmup_fraction: float = field(default=0.05, metadata={"help": "share of the pool the warm-up draws from"})
    warmup_lr: float = field(default=2e-4, metadata={"help": "warm-up learning rate"})
    gradient_type: str = field(default="adam", metadata={
        "help": "training gradient of the default feature list: adam (LESS/NICE, adds grad_adam) or sgd"})
    adam_eps: str = field(default="inside", metadata={
        "help": "grad_adam's eps: inside the root, m/sqrt(v+eps), as LESS's and NICE's code (default), or outside, "
                "m/(sqrt(v)+eps), as torch's Adam"})
    projection: str = field(default="sjlt", metadata={"help": f"random projection: {', '.join(PROJECTIONS)}"})
    proj_dim: int = field(default=8192, metadata={
        "help": "projected gradient dimension (ignored with projection none)"})
    grad_dtype: str = field(default="float32", metadata={
        "help": "storage of projected gradients: float32, or float16 (half the disk and reading time; cosine "
                "error below 2e-7, benchmarks/results/scale.md)"})
    seed: int = field(default=0, metadata={"help": "seed of the proxy, warm-up, projection and rollouts"})
    batch_size: int = field(default=8, metadata={"help": "examples per forward/backward pass"})
    max_length: int = field(default=256, metadata={"help": "tokens per example (prompt cut from the left first)"})
    shard_size: int = field(default=256, metadata={"help": "examples per saved shard (the unit of resuming)"})
    device: str = field(default="auto", metadata={"help": "auto (the rank's GPU if any, else cpu), cpu or cuda"})
    embedding_batch_size: int = field(default=64, metadata={"help": "texts per MiniLM batch"})
    rollout_backend: str = field(default="transformers", metadata={
        "help": "rollouts for nice/grpo: transformers (the proxy in memory), vllm (local model folder + the "
                "warmed-up adapter) or openai (a server that serves the same policy)"})
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible server for rollout_backend openai"})
    api_model: str | None = field(default=None, metadata={"help": "model name on that server"})
    rollouts: int = field(default=4, metadata={"help": "samples per prompt (NICE mc_samples, GradAlign k_r)"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature of the rollouts"})
    max_new_tokens: int = field(default=64, metadata={"help": "tokens per rollout"})
    completion_reward: str = field(default="verifier", metadata={
        "help": "reward of a sampled completion: verifier, reward_model or judge"})
    completion_reward_kwargs: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "reward settings, e.g. {model: path} for reward_model or {base_url: ..., model: ...} for judge"})
    nice_baseline: str = field(default="none", metadata={"help": "NICE: subtract the mean reward (mean) or not (none)"})
    nice_policy: str = field(default="vanilla", metadata={"help": "NICE sample filter: vanilla, rejection or topk"})
    nice_threshold: float = field(default=0.5, metadata={"help": "NICE rejection: keep samples with reward >= this"})
    nice_topk: int = field(default=1, metadata={"help": "NICE topk: keep this many best samples per prompt"})
    std_normalise: bool = field(default=False, metadata={"help": "GRPO: divide advantages by the reward std"})
    dpo_beta: float = field(default=0.1, metadata={"help": "DPO implicit reward scale beta"})
    dpo_reduction: str = field(default="sum", metadata={"help": "DPO log-prob over response tokens: sum or mean"})

    def __post_init__(self) -> None:
        if self.features is None:
            self.features = ["grad", *(["grad_adam"] if self.gradient_type == "adam" else []), "loss", "length",
                             "embedding"]
        self.features = list(dict.fromkeys(self.features))
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise SelectgymError(f"unknown feature(s) {', '.join(unknown)}; choose from {', '.join(FEATURES)}")
        if not self.features:
            raise SelectgymError(f"features is empty; name at least one of {', '.join(FEATURES)}")
        _choice("gradient_type", self.gradient_type, GRADIENT_TYPES)
        _choice("projection", self.projection, PROJECTIONS)
        _choice("adam_eps", self.adam_eps, ADAM_EPS_FORMS)
        _choice("grad_dtype", self.grad_dtype, GRAD_DTYPES)
        _choice("nice_baseline", self.nice_baseline, BASELINES)
        _choice("nice_policy", self.nice_policy, POLICIES)
        _choice("dpo_reduction", self.dpo_reduction, DPO_REDUCTIONS)
        _choice("rollout_backend", self.rollout_backend, ROLLOUT_BACKENDS)
        _choice("completion_reward", self.completion_reward, COMPLETION_REWARDS)
        for name in ("proj_dim", "batch_size", "max_length", "shard_size", "rollouts", "max_new_tokens",
                     "embedding_batch_size", "lora_r", "nice_topk"):
            if getattr(self, name) < 1:
                raise SelectgymError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_device(self.device, available=False)  # a stored config may name a GPU this machine lacks
        if not 0.0 <= self.lora_dropout < 1.0:
            raise SelectgymError(f"--lora-dropout must lie in [0, 1), e.g. 0.05; got {self.lora_dropout}")
        if not math.isfinite(self.warmup_lr) or self.warmup_lr <= 0:
            raise SelectgymError(f"--warmup-lr must be a positive number, e.g. 2e-4; got {self.warmup_lr}")
        if self.lora_alpha < 1:
            raise SelectgymError(f"--lora-alpha must be >= 1 (LoRA scales by alpha / r; 0 would silence it), e.g. 16; "
                                 f"got {self.lora_alpha}")
        if not math.isfinite(self.dpo_beta) or self.dpo_beta <= 0:
            raise SelectgymError(f"--dpo-beta must be a positive number, e.g. 0.1; got {self.dpo_beta}")
        if not math.isfinite(self.nice_threshold):
            raise SelectgymError(f"--nice-threshold must be a number, e.g. 0.5; got {self.nice_threshold}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise SelectgymError(f"--temperature must be >= 0 (0 samples greedily), e.g. 0.7; got {self.temperature}")
        if self.warmup_steps < 0 or self.warmup_epochs < 0:
            raise SelectgymError(f"warmup_steps and warmup_epochs must be >= 0, got {self.warmup_steps} and "
                                 f"{self.warmup_epochs}")
        if not 0.0 < self.warmup_fraction <= 1.0:
            raise SelectgymError(f"warmup_fraction must lie in (0, 1], got {self.warmup_fraction}")
        if "grad_adam" in self.features and self.warmup_steps == 0 and self.warmup_epochs == 0:
            raise SelectgymError("grad_adam needs Adam moments from a warm-up: set warmup_steps >= 1, or drop "
                                 "grad_adam (gradient_type sgd)")
        if self.max_length < 8:
            raise SelectgymError(f"max_length {self.max_length} leaves no room for a prompt; use at least 8")
        if self.rollout_backend == "openai" and not (self.base_url and self.api_model):
            raise SelectgymError("rollout_backend openai needs base_url and api_model")
        if self.nice_policy == "topk" and self.nice_topk > self.rollouts:
            raise SelectgymError(f"nice_topk {self.nice_topk} is more than the {self.rollouts} rollouts; lower "
                                 f"nice_topk or raise rollouts")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureConfig:
        """A config from a stored record (a store's meta, a policy's sidecar), older key names translated."""
        return cls(**current_names(values))

    def lora_spec(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout,
                        target_modules=list(self.lora_targets))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def needs_rollouts(self) -> bool:
        return "nice" in self.features or "grpo" in self.features


def _choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise SelectgymError(f"{name} {value!r} is unknown; choose one of {', '.join(allowed)}")
