"""The proxy a run computes features with: loaded and seeded, warmed up LESS-style once, saved in the store.

``build_proxy`` loads the model with a fresh seeded LoRA, warms it up on rank 0 (a fixed number of AdamW
steps, or LESS's epochs with a checkpoint each), saves the adapter and Adam moments in the store, and every
rank loads that state into a ``Proxy``, the one object the features read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from selectgym.data.pool import Example, Pool
from selectgym.errors import SelectgymError
from selectgym.proxies.distributed import barrier
from selectgym.proxies.feature_config import FeatureConfig
from selectgym.proxies.features.sampled import grpo_arrays
from selectgym.proxies.features.sft import sft_pass
from selectgym.proxies.features.sft import val_grads as sft_val_grads
from selectgym.proxies.gradients import adam_state, grad_dim
from selectgym.proxies.lora import attach_lora, lora_parameters
from selectgym.proxies.mini import MINI_NAME, mini_dir
from selectgym.proxies.models import SMOLLM2_NAME, TINY_NAME, TinyConfig, load_model, smollm2_dir
from selectgym.proxies.projection import make_projector
from selectgym.proxies.store import FeatureStore
from selectgym.proxies.warmup import warmup, warmup_checkpoints
from selectgym.utils import atomic_dir, derive_seed

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"


def proxy_device(cfg: FeatureConfig) -> torch.device:
    """The device a run computes on: ``cfg.device``, or this rank's GPU if any, else the CPU."""
    if cfg.device != "auto":
        return torch.device(cfg.device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return torch.device("cpu")


def load_proxy(cfg: FeatureConfig):
    """The proxy model with a fresh LoRA, both seeded by ``cfg.seed`` (no global RNG is touched)."""
    tiny = TinyConfig(seed=cfg.seed) if cfg.model == TINY_NAME else None
    model, tokenizer = load_model(cfg.model, tiny=tiny)
    model = attach_lora(model, cfg.lora_spec(), seed=derive_seed(cfg.seed, "lora"))
    model.eval()
    return model, tokenizer


def proxy_state(model, optimizer) -> dict[str, np.ndarray]:
    """LoRA weights, Adam moments and step by parameter name (what ``proxy.safetensors`` holds).

    Copies, not views: on CPU ``.numpy()`` shares memory with the live tensors, which training goes on changing.
    """
    state = {}
    for name, p in lora_parameters(model):
        state[f"lora/{name}"] = p.detach().float().cpu().numpy().copy()
        moments = optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in moments:
                state[f"{key}/{name}"] = moments[key].detach().float().cpu().numpy().copy()
        if "step" in moments:
            state[f"step/{name}"] = np.array(float(moments["step"]), dtype=np.float32)
    return state


def restore_proxy(model, state: dict[str, np.ndarray], lr: float) -> torch.optim.AdamW:
    """Load saved LoRA weights into ``model``; return an AdamW holding the saved moments."""
    params = lora_parameters(model)
    missing = [n for n, _ in params if f"lora/{n}" not in state]
    if missing:
        raise SelectgymError(f"the saved proxy lacks LoRA weights for {missing[0]}; the store was written with "
                             f"another adapter, remove it and recompute")
    optimizer = torch.optim.AdamW([p for _, p in params], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    with torch.no_grad():
        for name, p in params:
            p.copy_(torch.from_numpy(state[f"lora/{name}"]).to(p.device, p.dtype))
            if f"exp_avg/{name}" in state:
                optimizer.state[p] = {
                    "step": torch.tensor(float(state[f"step/{name}"])),
                    "exp_avg": torch.from_numpy(state[f"exp_avg/{name}"]).to(p.device, p.dtype),
                    "exp_avg_sq": torch.from_numpy(state[f"exp_avg_sq/{name}"]).to(p.device, p.dtype),
                }
    return optimizer


class Proxy:
    """The warmed-up proxy and what every feature shares: model, tokenizer, adapter checkpoints, projector,
    Adam moments, rollout generator and reward (TRAK's one object per stage, built once per run). The features
    (``proxies.features``) compute with it; it computes nothing itself.

    With saved ``states`` (the feature pipeline) the last one is loaded; without them (re-selection during
    training) the model is used as it is, with the Adam moments of its live ``optimizer``.
    """

    def __init__(self, cfg: FeatureConfig, model, tokenizer, states: dict[str, dict[str, np.ndarray]] | None = None,
                 store: FeatureStore | None = None, *, optimizer=None, reward=None, generator=None) -> None:
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        self.device = next(model.parameters()).device
        self.projector = make_projector(cfg.projection, grad_dim(model), cfg.proj_dim, seed=cfg.seed)
        self.states = states or {}  # checkpoint name ("" for the single one) -> adapter state; the last is final
        self._optimizer, self._moments = optimizer, None
        if self.states:
            self.use(list(self.states)[-1])
        self.store = store
        self._generator = generator
        self._reward = reward

    def use(self, checkpoint: str) -> None:
        """Load a checkpoint's adapter weights and Adam moments into the proxy."""
        self._optimizer = restore_proxy(self.model, self.states[checkpoint], self.cfg.warmup_lr)
        self._moments = None
        self.model.eval()

    @property
    def moments(self) -> tuple:
        """The loaded checkpoint's Adam moments (``adam_state``), gathered when a feature first asks."""
        if self._moments is None:
            self._moments = adam_state(self.model, self._optimizer)
        return self._moments

    # finetune/reselect.py scores the live model through these three; features call the functions directly
    def sft_grads(self, examples: Sequence[Example], adam: bool) -> dict[str, np.ndarray]:
        return sft_pass(self, examples, self.cfg.feature("grad_adam").adam_eps if adam else None)

    def val_grads(self, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        return sft_val_grads(self, examples)

    def grpo(self, examples: Sequence[Example], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return grpo_arrays(self, examples, seed, self.cfg.feature("grpo").std_normalise)

    def generator(self):
        """Rollouts from the proxy: in memory (transformers), vLLM with the saved adapter, or an HTTP server."""
        if self._generator is None:
            from selectgym.proxies.rollouts import make_generator

            cfg = self.cfg
            if cfg.rollout_backend == "vllm":
                self._generator = make_generator("vllm", model_path=vllm_model_path(cfg.model),
                                                 lora_path=self.store.path / ADAPTER_DIR)
            elif cfg.rollout_backend == "openai":
                self._generator = make_generator("openai", base_url=cfg.base_url, api_model=cfg.api_model)
            else:
                self._generator = make_generator("transformers", model=self.model, tokenizer=self.tokenizer,
                                                 batch_size=max(cfg.batch_size, cfg.rollouts))
        return self._generator

    def reward(self):
        if self._reward is None:
            from selectgym.proxies.rewards import make_reward

            self._reward = make_reward(self.cfg.completion_reward, **self.cfg.completion_reward_kwargs)
        return self._reward


def vllm_model_path(model: str) -> Path:
    """The local HF folder vLLM loads for a proxy model spec."""
    if model == SMOLLM2_NAME:
        return smollm2_dir()
    if model == MINI_NAME:
        return mini_dir()
    if model == TINY_NAME or str(model).endswith(".gguf") or not Path(model).is_dir():
        raise SelectgymError(f"rollout_backend vllm needs the proxy as a local HF folder (or smollm2), not "
                             f"{model!r}; use rollout_backend transformers")
    return Path(model)


def _save_adapter(model, folder: Path) -> None:
    """The warmed-up LoRA as a peft folder (what vLLM loads), written to a temporary name first."""
    if (folder / "adapter_config.json").exists():
        return
    with atomic_dir(folder, replace=False) as tmp:
        model.save_pretrained(str(tmp))


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build_proxy(cfg: FeatureConfig, pool: Pool, store: FeatureStore, rank: int = 0, world_size: int = 1) -> Proxy:
    """The warmed-up proxy: warmed up once (rank 0) and saved in the store; every process loads that state.

    The proxy holds one adapter state named ``""`` after ``warmup_steps``, or one per epoch (``"1"``, ``"2"``,
    ...) with LESS's schedule, whose mean LRs go to ``meta["checkpoints"]``.
    """
    model, tokenizer = load_proxy(cfg)
    model.to(proxy_device(cfg))
    if rank == 0 and store.load_proxy() is None:
        started = time.perf_counter()
        kwargs = {"fraction": cfg.warmup_fraction, "lr": cfg.warmup_lr, "batch_size": cfg.batch_size,
                  "max_length": cfg.max_length, "seed": derive_seed(cfg.seed, "warmup")}
        if cfg.warmup_epochs:
            state, lrs = {}, {}
            for epoch, optimizer, mean_lr in warmup_checkpoints(model, tokenizer, pool, epochs=cfg.warmup_epochs,
                                                                **kwargs):
                state.update({f"{epoch}/{k}": v for k, v in proxy_state(model, optimizer).items()})
                lrs[str(epoch)] = mean_lr
            store.update_meta(checkpoints=lrs)
        else:
            state = proxy_state(model, warmup(model, tokenizer, pool, steps=cfg.warmup_steps, **kwargs))
        store.save_proxy(state, metadata={"warmup_steps": str(cfg.warmup_steps),
                                          "warmup_epochs": str(cfg.warmup_epochs)})
        log.info("warmed the proxy up in %.1f s", time.perf_counter() - started)
    if rank == 0 and "adapter" not in store.meta:
        store.update_meta(adapter={"lora": dataclasses.asdict(cfg.lora_spec()), "warmup_steps": cfg.warmup_steps,
                                   "warmup_epochs": cfg.warmup_epochs, "warmup_fraction": cfg.warmup_fraction,
                                   "warmup_lr": cfg.warmup_lr, "proxy_file": store.proxy_path.name,
                                   "proxy_sha256": _file_hash(store.proxy_path)})
    barrier(world_size)
    saved = store.load_proxy()
    checkpoints = FeatureStore(store.path).meta.get("checkpoints")  # reread: rank 0 may have just written it
    if checkpoints:
        states = {c: {k.partition("/")[2]: v for k, v in saved.items() if k.startswith(f"{c}/")} for c in checkpoints}
    else:
        states = {"": saved}
    restore_proxy(model, states[list(states)[-1]], cfg.warmup_lr)
    model.eval()
    if rank == 0 and cfg.rollout_backend == "vllm" and cfg.needs_rollouts:
        _save_adapter(model, store.path / ADAPTER_DIR)
    barrier(world_size)
    return Proxy(cfg, model, tokenizer, states, store)
