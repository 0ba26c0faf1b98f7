"""``FeatureConfig``: the settings every feature shares (model, adapter, warm-up, projection, rollouts) and the
options of each feature it holds; everything that decides the features' values (hashed into the store's key)."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from selectgym.errors import SelectgymError
from selectgym.proxies.features import (
    BUILTIN,
    FEATURES,
    Feature,
    default_features,
    describe_defaults,
    feature_class,
    is_path,
    option_defaults,
    option_names,
)
from selectgym.proxies.gradients import GRADIENT_TYPES
from selectgym.proxies.lora import ALL_LINEAR, LoraSpec
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


@dataclass(init=False)
class FeatureConfig:
    """The shared settings as fields, each held feature's options in ``options``.

    Options are given flat beside the settings (``FeatureConfig(dpo_beta=0.2)``, ``--dpo-beta``, a YAML key), as
    before features carried them, and ``to_dict`` writes them flat: a config with the same settings hashes to
    the same store key as it did then. The built-in features' options are always held (they were always in
    the key); another feature's only while ``features`` names it.
    """

    model: str = field(default="tiny", metadata={
        "help": "proxy model: tiny, mini (pretrained here on the task world), smollm2, a local HF folder or a .gguf"})
    features: list[str] | None = field(default=None, metadata={
        "help": f"features to compute, of {', '.join(FEATURES)} or a dotted path pkg.mod:Class (default: "
                f"{describe_defaults()})"})
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
    options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "each held feature's options by name (flags and YAML give them flat: --dpo-beta, nice_topk)"})

    def __init__(self, **values: Any) -> None:
        given = dict(values.pop("options", None) or {})
        for f in dataclasses.fields(self):
            if f.name != "options":
                setattr(self, f.name, values.pop(f.name) if f.name in values else _default(f))
        self._settle({**given, **values})

    def _settle(self, given: dict[str, Any]) -> None:
        """Default the features, hold their options and check every setting (one-line errors)."""
        if self.features is None:
            self.features = default_features(self.gradient_type)
        self.features = list(dict.fromkeys(self.features))
        unknown = [f for f in self.features if f not in FEATURES and not is_path(f)]
        if unknown:
            raise SelectgymError(f"unknown feature(s) {', '.join(unknown)}; choose from {', '.join(FEATURES)} or give "
                                 "a dotted path pkg.mod:Class")
        if not self.features:
            raise SelectgymError(f"features is empty; name at least one of {', '.join(FEATURES)}")
        self.options = self._held_options(given)
        _choice("gradient_type", self.gradient_type, GRADIENT_TYPES)
        _choice("projection", self.projection, PROJECTIONS)
        _choice("grad_dtype", self.grad_dtype, GRAD_DTYPES)
        _choice("rollout_backend", self.rollout_backend, ROLLOUT_BACKENDS)
        _choice("completion_reward", self.completion_reward, COMPLETION_REWARDS)
        for name in ("proj_dim", "batch_size", "max_length", "shard_size", "rollouts", "max_new_tokens", "lora_r"):
            if getattr(self, name) < 1:
                raise SelectgymError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_device(self.device, available=False)  # a stored config may name a GPU this machine lacks
        self.lora_spec()  # alpha and dropout are checked where LoRA's settings live
        if not math.isfinite(self.warmup_lr) or self.warmup_lr <= 0:
            raise SelectgymError(f"--warmup-lr must be a positive number, e.g. 2e-4; got {self.warmup_lr}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise SelectgymError(f"--temperature must be >= 0 (0 samples greedily), e.g. 0.7; got {self.temperature}")
        if self.warmup_steps < 0 or self.warmup_epochs < 0:
            raise SelectgymError(f"warmup_steps and warmup_epochs must be >= 0, got {self.warmup_steps} and "
                                 f"{self.warmup_epochs}")
        if not 0.0 < self.warmup_fraction <= 1.0:
            raise SelectgymError(f"warmup_fraction must lie in (0, 1], got {self.warmup_fraction}")
        if self.max_length < 8:
            raise SelectgymError(f"max_length {self.max_length} leaves no room for a prompt; use at least 8")
        if self.rollout_backend == "openai" and not (self.base_url and self.api_model):
            raise SelectgymError("rollout_backend openai needs base_url and api_model")
        for name in self.features:
            self.feature(name).check_config(self)

    def _held_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The options of the built-in and the requested features, ``given`` or default, each feature's checked."""
        held = [feature_class(n) for n in dict.fromkeys([*BUILTIN, *self.features])]
        known = {opt for cls in [*FEATURES.values(), *held] for opt in option_names(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise SelectgymError(f"unknown setting(s) {', '.join(unknown)}: not a feature setting, nor an option of a "
                                 "registered or requested feature")
        shared = {f.name for f in dataclasses.fields(self)}
        options: dict[str, Any] = {}
        for cls in held:
            clash = sorted(set(option_names(cls)) & shared)
            if clash:
                raise SelectgymError(f"feature {cls.name!r} has option(s) {', '.join(clash)}, which are shared "
                                     "settings; give them another name")
            mine = {opt: given.get(opt, default) for opt, default in option_defaults(cls).items()}
            cls(**mine)  # its own checks of its option values
            options.update(mine)
        return options

    def __getattr__(self, name: str) -> Any:
        # a feature's option read as before it moved (``cfg.std_normalise``); new code asks ``cfg.feature(name)``
        options = self.__dict__.get("options")
        if options is not None and name in options:
            return options[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def feature(self, name: str) -> Feature:
        """The feature ``name`` (registered, or a dotted path) with this config's options."""
        cls = feature_class(name)
        return cls(**{opt: self.options[opt] for opt in option_names(cls) if opt in self.options})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureConfig:
        """A config from a stored record (a store's meta, a policy's sidecar), older key names translated."""
        return cls(**current_names(values))

    def lora_spec(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout,
                        target_modules=list(self.lora_targets))

    def to_dict(self) -> dict[str, Any]:
        """Flat: the shared settings and the held options side by side (what the store's key is hashed from)."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "options"}
        return copy.deepcopy({**shared, **self.options})

    @property
    def needs_rollouts(self) -> bool:
        return any(feature_class(name).rollouts for name in self.features)


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise SelectgymError(f"{name} {value!r} is unknown; choose one of {', '.join(allowed)}")
