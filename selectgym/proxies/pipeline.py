"""The feature pipeline: from a pool and a validation set to a resumable ``FeatureStore``.

One proxy (model + LoRA, seeded), warmed up LESS-style, then the training pool in shards (skipping
finished ones) and the validation set. Under ``torchrun`` each rank computes the shards ``i`` with
``i % world_size == rank``; rank 0 warms the proxy up once (every rank loads that saved adapter), writes
the validation table and marks the store complete.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selectgym.data.pool import Example, Pool
from selectgym.errors import SelectgymError
from selectgym.proxies.lora import ALL_LINEAR, LoraSpec, lora_parameters
from selectgym.proxies.store import FeatureStore
from selectgym.proxies.table import FeatureTable
from selectgym.utils import stable_hash

log = logging.getLogger(__name__)

#: what ``features`` may name; ``nice`` adds ``pg_grad`` to the validation table, ``grpo`` the GRPO arrays.
FEATURES = ("grad", "grad_adam", "loss", "length", "embedding", "dpo_gap", "nice", "grpo")
GRADIENT_TYPES = ("adam", "sgd")
PROJECTIONS = ("sjlt", "rademacher", "none")
BASELINES = ("none", "mean")
PG_POLICIES = ("vanilla", "rejection", "topk")
ROLLOUT_BACKENDS = ("transformers", "vllm", "openai")
TRAIN, VAL = "train", "val"
ADAPTER_DIR = "adapter"


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
    lora_target_modules: list[str] = field(default_factory=lambda: list(ALL_LINEAR), metadata={
        "help": "linear layers that get LoRA adapters"})
    warmup_steps: int = field(default=20, metadata={
        "help": "AdamW steps on a random share of the pool before features (LESS warm-up; 0 = none)"})
    warmup_fraction: float = field(default=0.05, metadata={"help": "share of the pool the warm-up draws from"})
    warmup_lr: float = field(default=2e-4, metadata={"help": "warm-up learning rate"})
    gradient_type: str = field(default="adam", metadata={
        "help": "training gradient of the default feature list: adam (LESS/NICE, adds grad_adam) or sgd"})
    projection: str = field(default="sjlt", metadata={"help": f"random projection: {', '.join(PROJECTIONS)}"})
    dim: int = field(default=8192, metadata={"help": "projected gradient dimension (ignored with projection none)"})
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
    k: int = field(default=4, metadata={"help": "rollouts per prompt (NICE mc_samples, GradAlign k_r)"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature of the rollouts"})
    max_new_tokens: int = field(default=64, metadata={"help": "tokens per rollout"})
    reward: str = field(default="verifier", metadata={"help": "rollout reward: verifier, reward_model or judge"})
    reward_kwargs: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "reward settings, e.g. {model: path} for reward_model or {base_url: ..., model: ...} for judge"})
    baseline: str = field(default="none", metadata={"help": "NICE: subtract the mean reward (mean) or not (none)"})
    policy: str = field(default="vanilla", metadata={"help": "NICE sample filter: vanilla, rejection or topk"})
    threshold: float = field(default=0.5, metadata={"help": "NICE rejection: keep samples with reward >= this"})
    topk: int = field(default=1, metadata={"help": "NICE topk: keep this many best samples per prompt"})
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
        _choice("baseline", self.baseline, BASELINES)
        _choice("policy", self.policy, PG_POLICIES)
        _choice("dpo_reduction", self.dpo_reduction, ("sum", "mean"))
        _choice("rollout_backend", self.rollout_backend, ROLLOUT_BACKENDS)
        for name in ("dim", "batch_size", "max_length", "shard_size", "k", "max_new_tokens", "embedding_batch_size",
                     "lora_r", "topk"):
            if getattr(self, name) < 1:
                raise SelectgymError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise SelectgymError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 < self.warmup_fraction <= 1.0:
            raise SelectgymError(f"warmup_fraction must lie in (0, 1], got {self.warmup_fraction}")
        if "grad_adam" in self.features and self.warmup_steps == 0:
            raise SelectgymError("grad_adam needs Adam moments from a warm-up: set warmup_steps >= 1, or drop "
                                 "grad_adam (gradient_type sgd)")
        if self.max_length < 8:
            raise SelectgymError(f"max_length {self.max_length} leaves no room for a prompt; use at least 8")
        if self.rollout_backend == "openai" and not (self.base_url and self.api_model):
            raise SelectgymError("rollout_backend openai needs base_url and api_model")
        if self.policy == "topk" and self.topk > self.k:
            raise SelectgymError(f"topk {self.topk} is more than the k={self.k} rollouts; lower topk or raise k")

    def lora_spec(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout,
                        target_modules=list(self.lora_target_modules))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def needs_rollouts(self) -> bool:
        return "nice" in self.features or "grpo" in self.features


def _choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise SelectgymError(f"{name} {value!r} is unknown; choose one of {', '.join(allowed)}")


def derive_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed for one stage or shard, the same in every process and on every resume."""
    return int(stable_hash([seed, *parts], 8), 16) & 0x7FFFFFFF


# -- the proxy ---------------------------------------------------------------------------------------------

def _device(cfg: FeatureConfig) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return torch.device("cpu")


def load_proxy(cfg: FeatureConfig):
    """The proxy model with a fresh LoRA, both seeded by ``cfg.seed`` (no global RNG is touched)."""
    from selectgym.proxies.lora import attach_lora
    from selectgym.proxies.models import TINY_NAME, TinyConfig, load_model

    tiny = TinyConfig(seed=cfg.seed) if cfg.model == TINY_NAME else None
    model, tokenizer = load_model(cfg.model, tiny=tiny)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "lora"))
        model = attach_lora(model, cfg.lora_spec())
    model.eval()
    return model, tokenizer


def proxy_state(model, optimizer) -> dict[str, np.ndarray]:
    """LoRA weights, Adam moments and step by parameter name (what ``proxy.safetensors`` holds)."""
    state = {}
    for name, p in lora_parameters(model):
        state[f"lora/{name}"] = p.detach().float().cpu().numpy()
        moments = optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in moments:
                state[f"{key}/{name}"] = moments[key].detach().float().cpu().numpy()
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


# -- per-shard features ------------------------------------------------------------------------------------

def _check_finite(name: str, values: np.ndarray, ids: Sequence[str]) -> None:
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        raise SelectgymError(f"feature {name!r} is not finite (NaN/inf) for example {ids[int(np.argmax(bad))]!r}; "
                             f"check that example, or lower warmup_lr")


def response_lengths(tokenizer, examples: Sequence[Example]) -> np.ndarray:
    """Tokens of each example's SFT target (with the end-of-sequence token), not truncated."""
    eos = 1 if tokenizer.eos_token_id is not None else 0
    texts = [ex.target for ex in examples]
    return np.array([len(ids) + eos for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]],
                    dtype=np.float32)


class _Proxy:
    """The warmed-up proxy and what every shard's computation shares (projector, optimizer moments, rollouts)."""

    def __init__(self, cfg: FeatureConfig, model, tokenizer, optimizer, store: FeatureStore) -> None:
        from selectgym.proxies.gradients import adam_state, grad_dim
        from selectgym.proxies.projection import make_projector

        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        self.projector = make_projector(cfg.projection, grad_dim(model), cfg.dim, seed=cfg.seed)
        self.moments = adam_state(model, optimizer) if "grad_adam" in cfg.features else None
        self.store = store
        self._generator = None
        self._reward = None

    def sft_grads(self, examples: Sequence[Example], adam: bool) -> dict[str, np.ndarray]:
        """Projected raw (and Adam-normalised) SFT gradients and the losses, from one backward pass per batch.

        Full gradients stay on the model's device and are projected there; only ``dim`` columns come back.
        """
        from selectgym.data.render import collate, render_example
        from selectgym.proxies.gradients import adam_normalise, length_batches, per_example_grads

        cfg = self.cfg
        out = {"grad": np.zeros((len(examples), self.projector.dim_out), dtype=np.float32),
               "loss": np.zeros(len(examples), dtype=np.float32)}
        if adam:
            out["grad_adam"] = np.zeros_like(out["grad"])
        rendered = [render_example(self.tokenizer, ex, cfg.max_length) for ex in examples]
        for rows in length_batches([len(r.input_ids) for r in rendered], cfg.batch_size):
            batch = collate([rendered[i] for i in rows], self.tokenizer.pad_token_id)
            full, losses = per_example_grads(self.model, batch, reduction="mean", return_losses=True)
            out["grad"][rows] = self.projector.project(full).cpu().numpy()
            out["loss"][rows] = losses.float().cpu().numpy()
            if adam:
                out["grad_adam"][rows] = self.projector.project(adam_normalise(full, *self.moments)).cpu().numpy()
        return out

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
                                                 batch_size=max(cfg.batch_size, cfg.k))
        return self._generator

    def reward(self):
        if self._reward is None:
            from selectgym.proxies.rewards import make_reward

            self._reward = make_reward(self.cfg.reward, **self.cfg.reward_kwargs)
        return self._reward

    def grpo(self, examples: Sequence[Example], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from selectgym.proxies.policy_grad import grpo_candidate_grads

        cfg = self.cfg
        grads, signal, pass_rate = grpo_candidate_grads(
            self.model, self.tokenizer, list(examples), self.generator(), self.reward(), k=cfg.k,
            std_normalise=cfg.std_normalise, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
            projector=self.projector, batch_size=cfg.batch_size, max_length=cfg.max_length, seed=seed)
        return (np.asarray(grads, dtype=np.float32), np.asarray(signal, dtype=np.float32),
                np.asarray(pass_rate, dtype=np.float32))

    def train_shard(self, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        """Every requested training-pool array for one shard."""
        cfg, want = self.cfg, set(self.cfg.features)
        ids = [ex.id for ex in examples]
        arrays: dict[str, np.ndarray] = {}
        if want & {"grad", "grad_adam"}:
            grads = self.sft_grads(examples, adam="grad_adam" in want)
            arrays.update({k: v for k, v in grads.items() if k in want})
        elif "loss" in want:
            from selectgym.proxies.warmup import sft_losses

            arrays["loss"] = sft_losses(self.model, self.tokenizer, examples, batch_size=cfg.batch_size,
                                        max_length=cfg.max_length)
        if "length" in want:
            arrays["length"] = response_lengths(self.tokenizer, examples)
        if "embedding" in want:
            from selectgym.proxies.embeddings import embed_examples

            arrays["embedding"] = embed_examples(examples, batch_size=cfg.embedding_batch_size,
                                                 device=str(_device(cfg)))
        if "dpo_gap" in want:
            from selectgym.proxies.dpo import dpo_reward_gaps

            arrays["dpo_gap"] = np.asarray(dpo_reward_gaps(
                self.model, None, self.tokenizer, list(examples), beta=cfg.dpo_beta, reduction=cfg.dpo_reduction,
                batch_size=cfg.batch_size, max_length=cfg.max_length), dtype=np.float32)
        if "grpo" in want:
            seed = derive_seed(cfg.seed, "grpo", ids[0])
            arrays["grpo_grad"], arrays["grpo_signal"], arrays["pass_rate"] = self.grpo(examples, seed)
        for name, values in arrays.items():
            _check_finite(name, values, ids)
        return arrays

    def val_table(self, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        """The validation arrays: reference-answer SFT gradient (never Adam), NICE and GRPO gradients."""
        from selectgym.proxies.gradients import sft_grads

        cfg, want = self.cfg, set(self.cfg.features)
        ids = [ex.id for ex in examples]
        arrays = {"grad": np.asarray(sft_grads(self.model, self.tokenizer, list(examples), projector=self.projector,
                                               batch_size=cfg.batch_size, max_length=cfg.max_length,
                                               gradient_type="sgd"), dtype=np.float32)}
        if "nice" in want:
            from selectgym.proxies.policy_grad import nice_validation_grads

            pg, info = nice_validation_grads(
                self.model, self.tokenizer, list(examples), self.generator(), self.reward(), k=cfg.k,
                baseline=cfg.baseline, policy=cfg.policy, threshold=cfg.threshold, topk=cfg.topk,
                temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, projector=self.projector,
                batch_size=cfg.batch_size, max_length=cfg.max_length, seed=derive_seed(cfg.seed, "nice"))
            arrays["pg_grad"] = np.asarray(pg, dtype=np.float32)
            log.info("NICE validation gradients: mean reward %.3f over %d prompts x %d samples, %d fell back to "
                     "the reference answer", float(np.mean(info["rewards"])), len(examples), cfg.k,
                     int(np.sum(info["fallback"])))
        if "grpo" in want:
            grads, _, pass_rate = self.grpo(examples, derive_seed(cfg.seed, "grpo-val"))
            arrays["grpo_grad"], arrays["pass_rate"] = grads, pass_rate
        for name, values in arrays.items():
            _check_finite(name, values, ids)
        return arrays


def vllm_model_path(model: str) -> Path:
    """The local HF folder vLLM loads for a proxy model spec."""
    from selectgym.proxies.models import MINI_NAME, SMOLLM2_NAME, TINY_NAME, smollm2_dir

    if model == SMOLLM2_NAME:
        return smollm2_dir()
    if model == MINI_NAME:
        from selectgym.proxies.mini import mini_dir

        return mini_dir()
    if model == TINY_NAME or str(model).endswith(".gguf") or not Path(model).is_dir():
        raise SelectgymError(f"rollout_backend vllm needs the proxy as a local HF folder (or smollm2), not "
                             f"{model!r}; use rollout_backend transformers")
    return Path(model)


def _save_adapter(model, folder: Path) -> None:
    """The warmed-up LoRA as a peft folder (what vLLM loads), written to a temporary name first."""
    import shutil
    import tempfile

    if (folder / "adapter_config.json").exists():
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    model.save_pretrained(str(tmp))
    try:
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


# -- checks on the pools -----------------------------------------------------------------------------------

def check_pools(cfg: FeatureConfig, pool: Pool, val: Pool | None) -> None:
    """One-line errors for features the pools cannot give."""
    if len(pool) == 0:
        raise SelectgymError(f"{pool.source}: the pool is empty; features need at least one example")
    if "dpo_gap" in cfg.features:
        odd = next((ex for ex in pool if ex.kind != "preference"), None)
        if odd is not None:
            raise SelectgymError(f"dpo_gap needs a preference pool (prompt/chosen/rejected); {pool.source} is "
                                 f"{pool.format} (example {odd.id!r}); drop dpo_gap from features for this pool")
    if cfg.needs_rollouts and cfg.reward == "verifier":
        for name, p in (("grpo", pool if "grpo" in cfg.features else None), ("nice", val if "nice" in cfg.features
                                                                             else None)):
            odd = next((ex for ex in p or () if ex.answer is None), None)
            if odd is not None:
                raise SelectgymError(f"{name} with the verifier reward needs problems with an answer; {p.source} "
                                     f"example {odd.id!r} has none (use a verifiable pool, or another reward)")
    if "nice" in cfg.features and val is None:
        raise SelectgymError("nice computes validation policy gradients: give a validation file")


# -- distributed helpers -----------------------------------------------------------------------------------

def dist_env() -> tuple[int, int]:
    """``(rank, world_size)`` from the ``RANK``/``WORLD_SIZE`` variables torchrun and accelerate set."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@contextmanager
def _process_group(world_size: int):
    """A gloo process group for barriers when several processes share the work (and none exists yet)."""
    import torch.distributed as dist

    if world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        yield
        return
    dist.init_process_group("gloo", timeout=datetime.timedelta(hours=12))
    try:
        yield
    finally:
        dist.destroy_process_group()


def _barrier(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()


# -- the entry points --------------------------------------------------------------------------------------

def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def store_material(cfg: FeatureConfig, pool: Pool, val: Pool | None) -> dict[str, Any]:
    """What the store's key is hashed from: model, adapter, pool and validation content, config."""
    model = str(Path(cfg.model).resolve()) if Path(cfg.model).exists() else cfg.model
    return {"model": model, "adapter": dataclasses.asdict(cfg.lora_spec()), "pool_hash": pool.content_hash,
            "val_hash": val.content_hash if val is not None else None, "config": cfg.to_dict()}


def compute_features(pool_path: str | os.PathLike, val_path: str | os.PathLike | None, cfg: FeatureConfig,
                     out_dir: str | os.PathLike, *, rank: int | None = None, world_size: int | None = None,
                     progress: bool = True) -> FeatureStore:
    """Compute (or finish) the features of ``pool_path`` under ``out_dir/<key>/`` and return the store.

    ``rank``/``world_size`` default to the launcher's environment (1 process without one).
    """
    from selectgym.data.io import load_pool

    env_rank, env_world = dist_env()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise SelectgymError(f"rank {rank} is outside world_size {world_size}")
    pool = load_pool(pool_path)
    val = load_pool(val_path) if val_path is not None else None
    check_pools(cfg, pool, val)
    n_shards = -(-len(pool) // cfg.shard_size)
    meta = {"pool_path": str(Path(pool_path).resolve()), "val_path": str(Path(val_path).resolve()) if val_path
            else None, "pool_hash": pool.content_hash, "val_hash": val.content_hash if val is not None else None,
            "pool_format": pool.format, "n_pool": len(pool), "n_val": len(val) if val is not None else 0,
            "model": cfg.model, "config": cfg.to_dict(), "features": list(cfg.features), "shards": n_shards}
    root = Path(out_dir)
    with _process_group(world_size):
        store = _open_store(root, store_material(cfg, pool, val), meta, rank, world_size)
        if store.complete:
            log.info("features already complete at %s", store.path)
            if rank == 0:
                store.mark_latest()
            store.last_run = {"computed": 0, "reused": len(pool)}
            return store
        model, tokenizer, optimizer = _proxy(cfg, pool, store, rank, world_size)
        proxy = _Proxy(cfg, model, tokenizer, optimizer, store)
        finished = set(store.finished_shards(TRAIN))
        rows = {i: pool[i * cfg.shard_size:(i + 1) * cfg.shard_size] for i in range(n_shards)}
        mine = [i for i in range(n_shards) if i % world_size == rank and i not in finished]
        val_todo = val is not None and not store.has_table(VAL)
        log.info("rank %d of %d: computing train shards %s of %d (%d finished before)", rank, world_size, mine,
                 n_shards, len(finished))
        with _progress(sum(len(rows[i]) for i in mine), progress and rank == 0, "features") as advance:
            for i in mine:
                store.write_shard(TRAIN, i, rows[i].ids, proxy.train_shard(list(rows[i])))
                advance(len(rows[i]))
        if rank == 0 and val_todo:
            store.write_shard(VAL, 0, val.ids, proxy.val_table(list(val)))
        _barrier(world_size)
        if rank == 0:
            store.mark_complete({TRAIN: n_shards, **({VAL: 1} if val is not None else {})})
            store.mark_latest()
        _barrier(world_size)
    done = FeatureStore(store.path)
    reused = sum(len(rows[i]) for i in finished)
    done.last_run = {"computed": len(pool) - reused + (len(val) if val_todo else 0), "reused": reused}
    return done


def _open_store(root: Path, material: dict[str, Any], meta: dict[str, Any], rank: int,
                world_size: int) -> FeatureStore:
    """Rank 0 creates the store; the others open it after a barrier."""
    if rank == 0:
        store = FeatureStore.create(root, material, meta)
        _barrier(world_size)
        return store
    _barrier(world_size)
    return FeatureStore.create(root, material, meta)


def _proxy(cfg: FeatureConfig, pool: Pool, store: FeatureStore, rank: int, world_size: int):
    """The warmed-up proxy: warmed up once (rank 0) and saved in the store; every process loads that state."""
    from selectgym.proxies.warmup import warmup

    model, tokenizer = load_proxy(cfg)
    model.to(_device(cfg))
    if rank == 0 and store.load_proxy() is None:
        started = time.perf_counter()
        optimizer = warmup(model, tokenizer, pool, steps=cfg.warmup_steps, fraction=cfg.warmup_fraction,
                           lr=cfg.warmup_lr, batch_size=cfg.batch_size, max_length=cfg.max_length,
                           seed=derive_seed(cfg.seed, "warmup"))
        store.save_proxy(proxy_state(model, optimizer), metadata={"warmup_steps": str(cfg.warmup_steps)})
        log.info("warmed the proxy up in %.1f s (%d steps)", time.perf_counter() - started, cfg.warmup_steps)
    if rank == 0 and "adapter" not in store.meta:
        store.update_meta(adapter={"lora": dataclasses.asdict(cfg.lora_spec()), "warmup_steps": cfg.warmup_steps,
                                   "warmup_fraction": cfg.warmup_fraction, "warmup_lr": cfg.warmup_lr,
                                   "proxy_file": store.proxy_path.name,
                                   "proxy_sha256": _file_hash(store.proxy_path)})
    _barrier(world_size)
    optimizer = restore_proxy(model, store.load_proxy(), cfg.warmup_lr)
    model.eval()
    if rank == 0 and cfg.rollout_backend == "vllm" and cfg.needs_rollouts:
        _save_adapter(model, store.path / ADAPTER_DIR)
    _barrier(world_size)
    return model, tokenizer, optimizer


@contextmanager
def _progress(total: int, enabled: bool, desc: str):
    """A tqdm bar in examples (its rate is examples/s); yields ``advance(n)``."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="ex", desc=desc, disable=not enabled, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()


def load_features(path: str | os.PathLike) -> tuple[FeatureTable, FeatureTable | None, FeatureStore]:
    """``(train table, val table or None, store)`` from a folder written by ``compute_features``."""
    store = FeatureStore.open(path)
    val = store.table(VAL) if store.has_table(VAL) else None
    return store.table(TRAIN), val, store

