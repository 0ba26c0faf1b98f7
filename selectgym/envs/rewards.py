"""Rewards of the selection envs: one interface, chosen by name in a config (``REWARDS``).

A reward is told, step by step, which rows of the training table were added to the selection, and returns
how much that batch is worth; ``finish`` is told the whole selection when the budget is spent, and a terminal
reward pays there (the env adds it to the last step). ``reset`` starts a new episode from the same initial state.

``linear`` (first-order estimate, thousands of steps/s). With ``g_B`` the mean projected training gradient
of the batch, ``g_V`` the mean validation gradient and ``g_T`` the mean gradient of the rows taken before::

    r = lr * |g_B| * |g_V| * (cos(g_B, g_V) - redundancy * max(0, cos(g_B, g_T)))
      = lr * <g_B, g_V> - redundancy * lr * |g_B| * |g_V| * max(0, cos(g_B, g_T))

The first term is the first-order drop of the validation loss after one SGD step of size ``lr`` on the
batch. By default (``normalise``) every g_i and g_V are first scaled to unit length, so the reward
measures direction rather than gradient norm (defective examples have the largest gradients). The penalty
has the same units and is zero for the first batch and for batches orthogonal to (or opposed to) what is
already taken, so a batch that repeats the selection earns less.

``proxy`` really trains the proxy's LoRA on the batch for ``steps`` optimizer steps and returns the drop in
the (subsampled, seeded) validation loss; adapter and optimizer return to their initial state every episode.

``trained`` is the real thing, made cheap: a terminal reward. At the end of the episode it fine-tunes a fresh
LoRA adapter of ``model`` (``mini`` by default, seconds) on the whole selection, as the target's fine-tuning does
(AdamW, linear decay, ``epochs`` reshuffled passes, gradients clipped), and scores it on target problems of its own
with the verifier (``score="accuracy"``, greedy answers) or the reference answers' loss (``"loss"``, negated); the
reward is the gain over the untrained model. Give it target problems the observations were not aligned to.

``learned`` is a linear model of an example's own features, ``bias + sum_k weights[k] * x_k`` averaged over
the batch, whose weights were fitted elsewhere (the transfer benchmark fits them on real proxy updates).

``none`` always returns 0: for rolling a trained policy out, where no reward is needed.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from selectgym.data.render import collate, render_example
from selectgym.envs.summaries import require_finite
from selectgym.errors import SelectgymError
from selectgym.proxies.gradients import sequence_losses
from selectgym.proxies.lora import LoraSpec, attach_lora, lora_parameters
from selectgym.proxies.models import load_model
from selectgym.proxies.table import FeatureTable
from selectgym.registry import Registry

log = logging.getLogger(__name__)


class StepReward(ABC):
    """How much adding a batch of rows to the selection is worth."""

    name: str = "reward"
    #: trains on the examples' texts: needs ``pool`` (the features' pool) and ``val_pool`` (target problems)
    reads_texts: bool = False

    @abstractmethod
    def reset(self) -> None:
        """Start a new episode: nothing taken, any trained state back to the start."""

    @abstractmethod
    def step(self, rows: np.ndarray) -> float:
        """The reward for adding ``rows`` (table row positions) to the selection."""

    def finish(self, rows: np.ndarray) -> float:
        """A terminal reward for the whole selection ``rows``, added to the last step's (0 unless overridden)."""
        return 0.0

    def describe(self) -> dict[str, Any]:
        """The settings that define this reward (recorded beside a saved policy)."""
        return {"name": self.name}


class NoReward(StepReward):
    """Always 0."""

    name = "none"

    def __init__(self, table: FeatureTable | None = None, val_table: FeatureTable | None = None) -> None:
        pass

    def reset(self) -> None:
        pass

    def step(self, rows: np.ndarray) -> float:
        return 0.0


class LinearReward(StepReward):
    """First-order validation-loss drop of one SGD step on the batch, minus a redundancy penalty.

    With ``normalise`` (the default) every training gradient and the validation target are scaled to unit
    length first, so the reward measures direction, as LESS's cosine does. The raw inner product
    (``normalise=False``) is dominated by gradient norm: garbled or wrong responses have the largest losses
    and gradients, and an agent trained on it learns to pick exactly those.
    """

    name = "linear"

    def __init__(self, table: FeatureTable, val_table: FeatureTable | None, lr: float = 1.0,
                 redundancy: float = 0.5, train_grad: str = "grad", val_grad: str = "grad",
                 normalise: bool = True) -> None:
        if val_table is None:
            raise SelectgymError("the linear reward needs validation gradients; give validation features "
                                 "or use reward 'proxy'")
        if lr <= 0 or redundancy < 0:
            raise SelectgymError(f"linear reward needs lr > 0 and redundancy >= 0 (got {lr}, {redundancy})")
        self.lr, self.redundancy = float(lr), float(redundancy)
        self.train_grad, self.val_grad = train_grad, val_grad
        self.normalise = bool(normalise)
        # Every vector-env copy holds the same table: prepare its (N, d) gradients once, not once per copy.
        self.grads = table.derived(("linear_reward_grads", train_grad, self.normalise),
                                   lambda: _prepared_grads(require_finite(table, train_grad), self.normalise))
        self.target = np.asarray(require_finite(val_table, val_grad, "validation"), dtype=np.float64).mean(axis=0)
        if self.grads.shape[1] != self.target.shape[0]:
            raise SelectgymError(f"train {train_grad!r} has dimension {self.grads.shape[1]} but validation "
                                 f"{val_grad!r} has {self.target.shape[0]}; compute both with the same projection")
        if self.normalise:
            t_norm = float(np.linalg.norm(self.target))
            self.target = self.target / t_norm if t_norm > 0 else self.target
        self.target_norm = float(np.linalg.norm(self.target))
        self.alignment = self.grads @ self.target  # <g_i, g_V>: the batch term is their mean
        self.reset()

    def reset(self) -> None:
        self.taken_sum = np.zeros_like(self.target)
        self.taken_count = 0

    def step(self, rows: np.ndarray) -> float:
        reward = self.lr * float(self.alignment[rows].sum()) / len(rows)  # sum/len: cheaper than np.mean per step
        batch_sum = self.grads[rows].sum(axis=0)
        if self.taken_count and self.redundancy:
            g_b = batch_sum / len(rows)
            norm_b, norm_t = float(np.sqrt(g_b @ g_b)), float(np.sqrt(self.taken_sum @ self.taken_sum))
            if norm_b > 0 and norm_t > 0:
                overlap = max(0.0, float(g_b @ self.taken_sum) / (norm_b * norm_t))
                reward -= self.redundancy * self.lr * norm_b * self.target_norm * overlap
        self.taken_sum += batch_sum
        self.taken_count += len(rows)
        return reward

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.lr, "redundancy": self.redundancy, "normalise": self.normalise,
                "train_grad": self.train_grad, "val_grad": self.val_grad}


def table_examples(table: FeatureTable, pool: Sequence) -> list:
    """The pool's examples in the table's row order (a reward that trains on texts reads them by row)."""
    by_id = {ex.id: ex for ex in pool}
    missing = [i for i in table.ids if i not in by_id]
    if missing:
        raise SelectgymError(f"{len(missing)} feature rows (e.g. {missing[0]!r}) are not in the given pool; "
                             f"pass the pool the features were computed from")
    return [by_id[i] for i in table.ids]


def _prepared_grads(grads: np.ndarray, normalise: bool) -> np.ndarray:
    """Training gradients as float64, scaled to unit length with ``normalise`` (zero rows stay zero)."""
    grads = np.asarray(grads, dtype=np.float64)
    if normalise:
        norms = np.linalg.norm(grads, axis=1, keepdims=True)
        grads = grads / np.where(norms > 0, norms, 1.0)
    return grads


class ProxyReward(StepReward):
    """Train the proxy's LoRA on the batch for a few steps; reward = drop in validation loss."""

    name = "proxy"
    reads_texts = True

    def __init__(self, table: FeatureTable, val_table: FeatureTable | None = None, *, pool: Sequence,
                 val_pool: Sequence, model: str = "tiny", lr: float = 1e-3, steps: int = 2, val_subsample: int = 16,
                 max_length: int = 256, micro_batch: int = 16, lora_r: int = 8, seed: int = 0) -> None:
        if steps < 1 or lr <= 0 or val_subsample < 1 or micro_batch < 1:
            raise SelectgymError(f"proxy reward needs steps >= 1, lr > 0, val_subsample >= 1 and micro_batch >= 1 "
                                 f"(got {steps}, {lr}, {val_subsample}, {micro_batch})")
        self.examples = table_examples(table, pool)
        if len(val_pool) == 0:
            raise SelectgymError("the proxy reward needs a non-empty validation pool")
        self.settings = {"model": model, "lr": lr, "steps": steps, "val_subsample": val_subsample,
                         "max_length": max_length, "micro_batch": micro_batch, "lora_r": lora_r, "seed": seed}
        self.lr, self.steps, self.max_length, self.micro_batch = lr, steps, max_length, micro_batch
        base, self.tokenizer = load_model(model)
        self.model = attach_lora(base, LoraSpec(r=lora_r, alpha=2 * lora_r), seed=seed)
        self.params = [p for _, p in lora_parameters(self.model)]
        self.initial = [p.detach().clone() for p in self.params]
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(val_pool), size=min(val_subsample, len(val_pool)), replace=False))
        self.val_batch = self._collate([val_pool[int(i)] for i in keep])
        self._rendered: dict[int, Any] = {}
        self.initial_val_loss = self._val_loss()
        self.reset()

    def _collate(self, examples: Sequence) -> dict:
        items = [render_example(self.tokenizer, ex, self.max_length) for ex in examples]
        return collate(items, self.tokenizer.pad_token_id)

    def _loss(self, batch: dict):
        """The SFT loss of ALGORITHMS.md section 1 (token mean per response, then the batch mean), as everywhere."""
        return sequence_losses(self.model, batch).mean()

    def _val_loss(self) -> float:
        self.model.eval()
        with torch.no_grad():
            return float(self._loss(self.val_batch))

    def reset(self) -> None:
        with torch.no_grad():
            for p, p0 in zip(self.params, self.initial, strict=True):
                p.copy_(p0)
        self.optimizer = torch.optim.AdamW(self.params, lr=self.lr, weight_decay=0.0)
        self.val_loss = self.initial_val_loss

    def step(self, rows: np.ndarray) -> float:
        rows = [int(r) for r in rows]
        chunks = [self._collate([self.examples[r] for r in rows[i:i + self.micro_batch]])
                  for i in range(0, len(rows), self.micro_batch)]
        sizes = [len(c["input_ids"]) for c in chunks]
        self.model.train()
        for _ in range(self.steps):
            self.optimizer.zero_grad(set_to_none=True)
            for chunk, size in zip(chunks, sizes, strict=True):
                (self._loss(chunk) * (size / len(rows))).backward()
            self.optimizer.step()
        before, self.val_loss = self.val_loss, self._val_loss()
        return before - self.val_loss

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.settings}


class TrainedReward(StepReward):
    """Terminal reward: fine-tune a fresh LoRA of ``model`` on the episode's selection; the gain on a target half.

    Steps earn 0; ``finish`` trains ``epochs`` passes over the selection (batches of ``batch_size`` in a seeded
    order, AdamW at ``lr`` decaying linearly to 0, as the target's fine-tuning) from the same initial adapter
    every episode, then scores ``val_pool`` (greedy answers checked by the verifier, or minus the reference
    answers' loss) and returns the gain over the untrained model's score. ``repeats`` > 1 trains that many times,
    each from its own initial adapter (seeds ``seed``, ``seed + 1``, ...) and batch order, and returns the mean
    gain: one training run's seed-to-seed noise is as large as the differences between selections it ranks
    (``benchmarks/results/reward_fidelity.md``), and the mean of k runs has k times less of its variance.
    """

    name = "trained"
    reads_texts = True
    SCORES = ("accuracy", "loss")

    def __init__(self, table: FeatureTable, val_table: FeatureTable | None = None, *, pool: Sequence,
                 val_pool: Sequence, model: str = "mini", lr: float = 1e-3, epochs: float = 3.0, batch_size: int = 8,
                 score: str = "accuracy", max_new_tokens: int = 16, max_length: int = 256, lora_r: int = 8,
                 seed: int = 0, repeats: int = 1) -> None:
        from selectgym.data.verify import scorable

        if score not in self.SCORES:
            raise SelectgymError(f"the trained reward's score must be one of {', '.join(self.SCORES)}, got {score!r}")
        if lr <= 0 or epochs <= 0 or batch_size < 1 or max_new_tokens < 1 or repeats < 1:
            raise SelectgymError(f"the trained reward needs lr > 0, epochs > 0, batch_size >= 1, max_new_tokens "
                                 f">= 1 and repeats >= 1 (got {lr}, {epochs}, {batch_size}, {max_new_tokens}, "
                                 f"{repeats})")
        self.examples = table_examples(table, pool)
        self.val_pool = list(val_pool)
        if not self.val_pool or (score == "accuracy" and not any(scorable(ex) for ex in self.val_pool)):
            raise SelectgymError("the trained reward needs target problems with reference answers (val_pool)")
        self.settings = {"model": model, "lr": lr, "epochs": epochs, "batch_size": batch_size, "score": score,
                         "max_new_tokens": max_new_tokens, "max_length": max_length, "lora_r": lora_r, "seed": seed,
                         "repeats": repeats}
        self.lr, self.epochs, self.batch_size, self.score = float(lr), float(epochs), int(batch_size), score
        self.max_new_tokens, self.max_length, self.seed = int(max_new_tokens), int(max_length), int(seed)
        base, self.tokenizer = load_model(model)
        self.model = attach_lora(base, LoraSpec(r=lora_r, alpha=2 * lora_r), seed=seed)
        self.params = [p for _, p in lora_parameters(self.model)]
        self.initials = [[p.detach().clone() for p in self.params]]
        self.initials += [self._fresh_adapter(seed + i) for i in range(1, int(repeats))]
        self.baseline = self._score()  # every initial adapter is the base model (LoRA's B starts at zero)

    def reset(self) -> None:
        pass

    def step(self, rows: np.ndarray) -> float:
        return 0.0

    def _score(self) -> float:
        from selectgym.data.verify import score as verify
        from selectgym.proxies.losses import validation_loss
        from selectgym.proxies.rollouts import greedy_completions

        self.model.eval()
        with torch.no_grad():
            if self.score == "loss":
                return -validation_loss(self.model, self.tokenizer, self.val_pool, max_length=self.max_length)
            said = greedy_completions(self.model, self.tokenizer, self.val_pool, max_new_tokens=self.max_new_tokens)
        return float(np.mean([verify(ex, c) for ex, c in zip(self.val_pool, said, strict=True)]))

    def _fresh_adapter(self, seed: int) -> list[torch.Tensor]:
        """Another initial adapter, drawn as peft draws one (A uniform, B zero) from ``seed`` in a forked RNG; the
        adapter is put back to the first one after."""
        from peft.tuners.lora import LoraLayer

        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for module in self.model.modules():
                if isinstance(module, LoraLayer):
                    module.reset_lora_parameters("default", True)
        state = [p.detach().clone() for p in self.params]
        self._set_adapter(self.initials[0])
        return state

    def _set_adapter(self, state: Sequence[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, p0 in zip(self.params, state, strict=True):
                p.copy_(p0)

    def train_on(self, rows: Sequence[int], repeat: int = 0) -> None:
        """Fine-tune the adapter, from initial state ``repeat``, on the examples at table ``rows`` (a set: the order
        they were picked in does not matter). As the target's trainer does: each pass over them reshuffled (seeded)
        in batches of ``batch_size``, the last one short; ``epochs`` passes, AdamW, linear decay to 0, gradients
        clipped to norm 1."""
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        self._set_adapter(self.initials[repeat])
        per_pass = int(np.ceil(len(rows) / self.batch_size))
        n_steps = max(1, int(np.ceil(self.epochs * per_pass)))
        rng = np.random.default_rng([self.seed + repeat, len(rows)])
        batches: list[np.ndarray] = []
        while len(batches) < n_steps:
            order = rng.permutation(rows)
            batches += [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        optimizer = torch.optim.AdamW(self.params, lr=self.lr, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0 - k / n_steps)
        self.model.train()
        for batch in batches[:n_steps]:
            items = [render_example(self.tokenizer, self.examples[int(r)], self.max_length) for r in batch]
            optimizer.zero_grad(set_to_none=True)
            sequence_losses(self.model, collate(items, self.tokenizer.pad_token_id)).mean().backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            optimizer.step()
            schedule.step()
        optimizer.zero_grad(set_to_none=True)

    def finish(self, rows: np.ndarray) -> float:
        if len(rows) == 0:
            return 0.0
        gains = []
        for repeat in range(len(self.initials)):
            self.train_on(rows, repeat)
            gains.append(self._score() - self.baseline)
        return float(np.mean(gains))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.settings}


class LearnedReward(StepReward):
    """``bias + weights . x`` of each example's columns (``selectgym.envs.summaries.example_matrix``), batch mean."""

    name = "learned"

    def __init__(self, table: FeatureTable, val_table: FeatureTable | None = None, *, weights: dict[str, float],
                 bias: float = 0.0, train_grad: str = "grad", val_grad: str = "grad") -> None:
        from selectgym.envs.summaries import example_matrix

        if not weights:
            raise SelectgymError("the learned reward needs weights: a mapping from column name to weight")
        # alignment_z is derived from the alignment column: asking for it alone must still compute alignment
        features = list(dict.fromkeys("alignment" if k == "alignment_z" else k for k in weights))
        x, _, columns = table.derived(("learned_reward_x", tuple(features), train_grad, val_grad, id(val_table)),
                                      lambda: example_matrix(table, val_table, features, train_grad, val_grad))
        unknown = sorted(set(weights) - set(columns))
        if unknown:
            raise SelectgymError(f"the learned reward has weights for {unknown}, which are not example columns "
                                 f"({', '.join(columns)})")
        w = np.array([float(weights.get(c, 0.0)) for c in columns])
        self.values = x @ w + float(bias)
        self.settings = {"weights": {k: float(v) for k, v in weights.items()}, "bias": float(bias)}

    def reset(self) -> None:
        pass

    def step(self, rows: np.ndarray) -> float:
        return float(self.values[rows].mean())

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.settings}


#: reward name -> class; every class takes ``(table, val_table, **settings)``.
REWARDS = Registry("reward", {"linear": LinearReward, "proxy": ProxyReward, "trained": TrainedReward,
                              "learned": LearnedReward, "none": NoReward},
                   base=StepReward, fixed=("table", "val_table"))


def make_reward(reward: str | StepReward, table: FeatureTable, val_table: FeatureTable | None,
                **settings: Any) -> StepReward:
    """A reward from its name (or dotted path) and settings (an instance is returned as it is)."""
    if isinstance(reward, StepReward):
        return reward
    return REWARDS.create(reward, table, val_table, **settings)
