"""``AgentConfig``: every setting of an agent run (env, reward, algorithm), with help text for the CLI."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from selectgym.budget import DEFAULT_SHARE, check_budget
from selectgym.envs import CLUSTER_SELECT, ENVS, EXAMPLE_SELECT, FEATURE_SELECT, REWARDS, env_class
from selectgym.envs.summaries import ALIGNMENT_TARGETS, FEATURES
from selectgym.errors import SelectgymError
from selectgym.registry import Registry
from selectgym.utils import check_device

#: algorithm name -> SB3 / sb3-contrib class, imported on first use; the whole registry of agents.
ALGORITHMS = Registry("algorithm", {
    "ppo": "stable_baselines3:PPO",
    "maskable_ppo": "sb3_contrib:MaskablePPO",
    "dqn": "stable_baselines3:DQN",
    "a2c": "stable_baselines3:A2C",
}, fixed=("policy", "env"))
ON_POLICY = ("ppo", "maskable_ppo", "a2c")
#: rollout length per env when ``n_steps`` is unset: short for A2C (SB3's default), long for PPO's epochs.
DEFAULT_N_STEPS = {"ppo": 256, "maskable_ppo": 256, "a2c": 5}


def algorithm_class(name: str):
    """The SB3 / sb3-contrib class of an algorithm name (or dotted path)."""
    return ALGORITHMS.resolve(name)


@dataclass
class AgentConfig:
    """An agent run: which env and reward, which algorithm with which settings, what to log."""

    algo: str = field(default="ppo", metadata={"help": f"algorithm: {', '.join(ALGORITHMS)}"})
    env_id: str = field(default=FEATURE_SELECT, metadata={"help": f"{FEATURE_SELECT} (transfers to new pools), "
                                                                  f"{EXAMPLE_SELECT} (picks single examples; "
                                                                  f"PPO/A2C) or {CLUSTER_SELECT} (the paper's MDP)"})
    timesteps: int = field(default=20_000, metadata={"help": "env steps to train for (all envs together)"})
    n_envs: int = field(default=8, metadata={"help": "environments stepped together (DummyVecEnv); more copies with "
                                                     "a proportionally shorter n_steps keep the rollout and run "
                                                     "faster (benchmarks/results/env_speed.md)"})
    seed: int = field(default=0, metadata={"help": "seed of the agent, the envs and the evaluation"})
    budget: float = field(default=DEFAULT_SHARE, metadata={
        "help": "examples per episode: a share in (0, 1) or a count"})
    n_clusters: int = field(default=16, metadata={"help": "K-means clusters = actions"})
    batch_size: int = field(default=8, metadata={"help": "examples FeatureSelect takes per step"})
    chunk: int = field(default=32, metadata={"help": "candidates ExampleSelect shows per step"})
    order_by: str = field(default="alignment", metadata={
        "help": f"within-cluster order: one of {', '.join(FEATURES)} ('-' prefix ascending) or none"})
    observe: list[str] | None = field(default=None, metadata={
        "help": f"features the env observes: of {', '.join(FEATURES)}, or any other one-valued array of the "
                f"features by its name (default: the built-in ones the tables have)"})
    training_pools: dict[str, Any] | None = field(default=None, metadata={
        "help": f"train over pools drawn from these settings instead of --features ({EXAMPLE_SELECT}; YAML mapping "
                "of selectgym.agents.pools.TrainingPools: families, n_pools, sizes, target_share, defect_rate, ...)"})
    reward: str = field(default="linear", metadata={"help": f"training reward: {', '.join(REWARDS)}"})
    reward_kwargs: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "reward settings, e.g. {lr: 1.0, redundancy: 0.5} or {model: tiny, steps: 2}"})
    eval_reward: str = field(default="linear", metadata={
        "help": "reward reported on the held-out pool (proxy needs its texts)"})
    cluster_seed: int = field(default=0, metadata={"help": "K-means seed"})
    train_grad: str = field(default="grad", metadata={"help": "training gradient array: grad or grad_adam"})
    val_grad: str = field(default="grad", metadata={"help": "validation gradient array: grad or pg_grad"})
    alignment_target: str = field(default="mean", metadata={
        "help": f"target direction of the observed alignment ({EXAMPLE_SELECT}): mean (the mean validation "
                "gradient) or unit_mean (the mean of unit validation gradients, as LESS)"})
    learning_rate: float = field(default=3e-4, metadata={"help": "optimizer learning rate"})
    n_steps: int | None = field(default=None, metadata={
        "help": "rollout steps per env per update (on-policy; default 256 for PPO, 5 for A2C)"})
    minibatch_size: int = field(default=512, metadata={"help": "minibatch of PPO/MaskablePPO/DQN updates "
                                                                "(large = fast on CPU)"})
    n_epochs: int = field(default=4, metadata={"help": "PPO epochs per update"})
    gamma: float = field(default=1.0, metadata={"help": "discount; 1 = maximise the episode's total reward"})
    net_arch: list[int] = field(default_factory=lambda: [64, 64], metadata={"help": "hidden layer sizes"})
    normalize_reward: bool = field(default=True, metadata={"help": "scale training rewards (VecNormalize)"})
    eval_freq: int = field(default=5_000, metadata={"help": "env steps between held-out evaluations (0 = off)"})
    n_eval_episodes: int = field(default=2, metadata={"help": "episodes per evaluation"})
    checkpoint_freq: int = field(default=0, metadata={"help": "env steps between saved policies (0 = off)"})
    log_dir: str | None = field(default=None, metadata={"help": "folder for TensorBoard logs, evaluations and "
                                                                "checkpoints"})
    progress_bar: bool = field(default=True, metadata={"help": "show a progress bar"})
    device: str = field(default="cpu", metadata={"help": "torch device of the agent"})
    algo_kwargs: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "extra keyword arguments for the SB3 algorithm"})

    def __post_init__(self) -> None:
        check_budget(self.budget)
        if self.algo not in ALGORITHMS:
            raise SelectgymError(f"algo {self.algo!r} is unknown; choose from {', '.join(ALGORITHMS)}")
        if self.env_id not in ENVS:
            raise SelectgymError(f"env_id {self.env_id!r} is unknown; use {', '.join(ENVS)}")
        env = env_class(self.env_id)
        if env.algorithms is not None and self.algo not in env.algorithms:
            raise SelectgymError(f"{self.env_id} trains with algo {' or '.join(env.algorithms)}, not {self.algo}")
        for name in ("reward", "eval_reward"):
            if getattr(self, name) not in REWARDS:
                raise SelectgymError(f"{name} {getattr(self, name)!r} is unknown; choose from {', '.join(REWARDS)}")
        for name in ("timesteps", "n_envs", "n_clusters", "batch_size", "chunk", "minibatch_size", "n_epochs",
                     "n_eval_episodes"):
            if int(getattr(self, name)) < 1:
                raise SelectgymError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_freq < 0 or self.checkpoint_freq < 0:
            raise SelectgymError("eval_freq and checkpoint_freq must be >= 0 (0 turns them off)")
        check_device(self.device)
        if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise SelectgymError(f"--learning-rate must be a positive number, e.g. 3e-4; got {self.learning_rate}")
        if not 0 < self.gamma <= 1:
            raise SelectgymError(f"gamma must lie in (0, 1], got {self.gamma}")
        if not self.net_arch or any(int(n) < 1 for n in self.net_arch):
            raise SelectgymError(f"net_arch must list positive layer sizes, got {self.net_arch}")
        if self.algo in ON_POLICY:
            self.n_steps = self.n_steps or DEFAULT_N_STEPS[self.algo]
            if self.n_steps < 1:
                raise SelectgymError(f"n_steps must be >= 1, got {self.n_steps}")
            rollout = self.n_steps * self.n_envs
            if self.algo != "a2c" and self.minibatch_size > rollout:
                raise SelectgymError(f"minibatch_size {self.minibatch_size} is larger than a rollout "
                                     f"(n_steps {self.n_steps} x n_envs {self.n_envs} = {rollout}); "
                                     f"lower minibatch_size or raise n_steps")
        if self.training_pools is not None and not env.many_pools:
            many = [i for i in ENVS if env_class(i).many_pools]
            raise SelectgymError(f"training_pools draws several pools, which only {' and '.join(many)} trains over; "
                                 f"set env_id: {many[0]}")
        if self.alignment_target not in ALIGNMENT_TARGETS:
            raise SelectgymError(f"alignment_target {self.alignment_target!r} is unknown; choose from "
                                 f"{', '.join(ALIGNMENT_TARGETS)}")
        if self.alignment_target != "mean" and "alignment_target" not in env.agent_settings:
            takers = [i for i in ENVS if "alignment_target" in env_class(i).agent_settings]
            raise SelectgymError(f"alignment_target is a setting of {' and '.join(takers)}; set env_id: {takers[0]} "
                                 "or leave alignment_target at mean")
        if self.observe is not None and not self.observe:
            raise SelectgymError(f"observe is empty; name features of {', '.join(FEATURES)} or leave it unset")

    def env_kwargs(self) -> dict[str, Any]:
        """The env settings (everything but the tables, the reward and the clusters): the env's ``agent_settings``."""
        return {name: self.observe if name == "features" else getattr(self, name)
                for name in env_class(self.env_id).agent_settings}

    def algo_settings(self) -> dict[str, Any]:
        """Keyword arguments for the SB3 class (before ``algo_kwargs``, which win)."""
        settings: dict[str, Any] = {"learning_rate": self.learning_rate, "gamma": self.gamma,
                                    "policy_kwargs": {"net_arch": list(self.net_arch)}}
        if self.algo in ("ppo", "maskable_ppo"):
            settings.update(n_steps=self.n_steps, batch_size=self.minibatch_size, n_epochs=self.n_epochs)
        elif self.algo == "a2c":
            settings.update(n_steps=self.n_steps)
        else:
            settings.update(batch_size=self.minibatch_size, learning_starts=min(1_000, self.timesteps // 10),
                            exploration_fraction=0.3, target_update_interval=500)
        return {**settings, **self.algo_kwargs}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
