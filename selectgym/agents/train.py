"""Train an SB3 / sb3-contrib agent on a selection env over vectorised copies, and save it with its sidecar."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.logger import Logger, configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from selectgym.agents.config import ALGORITHMS, AgentConfig, algorithm_class
from selectgym.agents.policy_file import describe_policy, save_policy
from selectgym.envs import ENVS, env_class
from selectgym.envs.summaries import cluster_labels
from selectgym.errors import SelectgymError
from selectgym.proxies.table import FeatureTable

log = logging.getLogger(__name__)


@contextmanager
def preserved_global_rngs() -> Iterator[None]:
    """SB3 seeds Python's, NumPy's and torch's global generators; give them back as they were."""
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def make_env(cfg: AgentConfig, table: FeatureTable, val_table: FeatureTable | None, *, reward: str,
             reward_kwargs: dict[str, Any] | None = None, labels: np.ndarray | None = None,
             pools: Sequence[tuple] = (), reward_val_table: FeatureTable | None = None) -> Callable[[], gym.Env]:
    """A thunk building one monitored env (the clusters are computed once and shared between copies);
    ``pools`` (an env with ``many_pools``) are more ``(table, val_table, reward_val_table[, reward settings])`` to draw
    from at each reset, and ``reward_val_table`` the target the first pool's reward reads instead of ``val_table``."""
    env_cls = env_class(cfg.env_id)
    extra: dict[str, Any] = {"labels": labels} if env_cls.clusters else {}
    if env_cls.many_pools:
        extra.update(pools=pools, reward_val_table=reward_val_table)

    def thunk() -> gym.Env:
        env = gym.make(cfg.env_id, table=table, val_table=val_table, reward=reward, reward_kwargs=reward_kwargs,
                       **extra, **cfg.env_kwargs())
        return Monitor(env)
    return thunk


def make_vec_env(cfg: AgentConfig, table: FeatureTable, val_table: FeatureTable | None, *, reward: str,
                 reward_kwargs: dict[str, Any] | None, n_envs: int, training: bool,
                 pools: Sequence[tuple] = (), reward_val_table: FeatureTable | None = None) -> VecEnv:
    """``n_envs`` copies in a DummyVecEnv (fastest here); rewards scaled while training if configured."""
    env_cls = env_class(cfg.env_id)
    if pools and not env_cls.many_pools:
        raise SelectgymError(f"training over several pools needs env_id "
                             f"{' or '.join(i for i in ENVS if env_class(i).many_pools)}")
    labels = cluster_labels(table, cfg.n_clusters, cfg.cluster_seed) if env_cls.clusters else None
    venv: VecEnv = DummyVecEnv([make_env(cfg, table, val_table, reward=reward, reward_kwargs=reward_kwargs,
                                         labels=labels, pools=pools, reward_val_table=reward_val_table)
                                for _ in range(n_envs)])
    if cfg.normalize_reward:  # the eval copy is wrapped too (never scaled) so SB3 can sync the two
        venv = VecNormalize(venv, training=training, norm_obs=False, norm_reward=training, gamma=cfg.gamma)
    return venv


class PolicyCheckpoint(BaseCallback):
    """Save the policy with its sidecar every ``every`` env steps (all envs together)."""

    def __init__(self, every: int, folder: Path, sidecar: dict[str, Any]) -> None:
        super().__init__()
        self.every, self.folder, self.sidecar = every, folder, sidecar
        self.last = 0

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last >= self.every:
            self.last = self.num_timesteps
            save_policy(self.model, self.folder / f"policy_{self.num_timesteps}.zip", self.sidecar)
        return True


def build_agent(cfg: AgentConfig, venv: VecEnv):
    """The SB3 algorithm for ``cfg.algo`` over ``venv``, seeded, with TensorBoard/CSV logs under ``log_dir``."""
    settings = cfg.algo_settings()
    policy: Any = "MlpPolicy"
    env_cls = env_class(cfg.env_id)
    if env_cls.scores_candidates:  # one shared network scores every candidate
        from selectgym.agents.example_policy import CandidateScorerPolicy

        policy = CandidateScorerPolicy
        settings["policy_kwargs"] = {**settings.get("policy_kwargs", {}), **env_cls.policy_kwargs(cfg.env_kwargs())}
    cls = algorithm_class(cfg.algo)
    if cfg.algo_kwargs:  # a user's settings for the algorithm: names and values checked as the algorithm takes them
        takes = sorted(ALGORITHMS.options(cls))
        unknown = sorted(set(cfg.algo_kwargs) - set(takes))
        if unknown:
            raise SelectgymError(f"--algo-kwargs: {cfg.algo} has no setting(s) {unknown}; it takes {', '.join(takes)}")
        try:
            model = cls(policy, venv, seed=cfg.seed, device=cfg.device, verbose=0, **settings)
        except (ValueError, TypeError) as err:
            raise SelectgymError(f"--algo-kwargs {cfg.algo_kwargs}: {cfg.algo} refuses them: "
                                 f"{str(err).strip().splitlines()[0][:300]}") from None
    else:
        model = cls(policy, venv, seed=cfg.seed, device=cfg.device, verbose=0, **settings)
    if cfg.log_dir:
        model.set_logger(configure(str(Path(cfg.log_dir) / "logs"), ["csv", "tensorboard"]))
    else:
        model.set_logger(Logger(folder=None, output_formats=[]))  # SB3 would make a temp folder otherwise
    return model


def train_agent(cfg: AgentConfig, table: FeatureTable, val_table: FeatureTable | None = None, *,
                out: str | Path | None = None, eval_table: FeatureTable | None = None,
                eval_val_table: FeatureTable | None = None, reward_context: dict[str, Any] | None = None,
                eval_reward_context: dict[str, Any] | None = None, feature_config: dict[str, Any] | None = None,
                pools: Sequence[tuple] = (), reward_val_table: FeatureTable | None = None):
    """Train ``cfg.algo`` on ``table``; evaluate on ``eval_table`` every ``cfg.eval_freq`` steps; save to ``out``.

    ``pools`` (an env with ``many_pools``): more ``(table, val_table, reward_val_table)`` triples; each episode draws
    one of them or ``table`` (domain randomisation); ``reward_val_table`` is the target ``table``'s reward reads (a
    split the observed alignment never saw).
    ``reward_context`` adds objects a reward needs beyond its settings (the ``pool`` and ``val_pool`` texts of a reward
    that trains on them, ``proxy`` or ``trained``); over many pools, each other pool's come as its fourth item.
    Returns the trained model; ``out`` gets the zip and its JSON sidecar.
    """
    reward_kwargs = {**cfg.reward_kwargs, **(reward_context or {})}
    with preserved_global_rngs():
        venv = make_vec_env(cfg, table, val_table, reward=cfg.reward, reward_kwargs=reward_kwargs,
                            n_envs=cfg.n_envs, training=True, pools=pools, reward_val_table=reward_val_table)
        model = build_agent(cfg, venv)
        first_env = venv.unwrapped.envs[0].unwrapped
        sidecar = describe_policy(cfg.algo, cfg.env_id, first_env, cfg.env_kwargs(), feature_config, cfg.to_dict())
        callbacks: list[BaseCallback] = []
        if eval_table is not None and cfg.eval_freq:
            eval_kwargs = cfg.reward_kwargs if cfg.eval_reward == cfg.reward else {}
            eval_env = make_vec_env(cfg, eval_table, eval_val_table, reward=cfg.eval_reward,
                                    reward_kwargs={**eval_kwargs, **(eval_reward_context or {})}, n_envs=1,
                                    training=False)
            callbacks.append(_eval_callback(cfg, eval_env))
        if cfg.checkpoint_freq and cfg.log_dir:
            callbacks.append(PolicyCheckpoint(cfg.checkpoint_freq, Path(cfg.log_dir) / "checkpoints", sidecar))
        model.learn(total_timesteps=cfg.timesteps, callback=CallbackList(callbacks), progress_bar=cfg.progress_bar)
    if out is not None:
        save_policy(model, out, sidecar)
        log.info("saved %s policy to %s", cfg.algo, out)
    return model


def _eval_callback(cfg: AgentConfig, eval_env: VecEnv) -> BaseCallback:
    every = max(1, cfg.eval_freq // cfg.n_envs)
    log_path = str(Path(cfg.log_dir) / "eval") if cfg.log_dir else None
    if cfg.algo == "maskable_ppo":
        from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback

        return MaskableEvalCallback(eval_env, n_eval_episodes=cfg.n_eval_episodes, eval_freq=every,
                                    log_path=log_path, deterministic=True, verbose=0)
    return EvalCallback(eval_env, n_eval_episodes=cfg.n_eval_episodes, eval_freq=every, log_path=log_path,
                        deterministic=True, verbose=0)


def train_over_pools(cfg: AgentConfig, pools: Any, out: str | Path, folder: str | Path | None = None):
    """Train ``cfg`` over drawn training pools (``selectgym.agents.pools.TrainingPools``), built or reused in
    ``folder`` (default: their cache folder); a reward that trains on texts gets each pool's own. Returns the
    model, the pools' ``(train, val, reward_val)`` tables and the folder."""
    from selectgym.agents.pools import build_pools, pool_texts, pools_folder
    from selectgym.envs.rewards import REWARDS

    folder = Path(folder) if folder else pools_folder(pools)
    triples = build_pools(pools, folder, progress=cfg.progress_bar)
    texts = pool_texts(folder, len(triples)) if REWARDS.resolve(cfg.reward).reads_texts else [None] * len(triples)
    (train, val, reward_val), rest = triples[0], triples[1:]
    model = train_agent(cfg, train, val, out=out, pools=[(*t, c) for t, c in zip(rest, texts[1:], strict=True)],
                        reward_val_table=reward_val, reward_context=texts[0],
                        feature_config=pools.feature_config("sft").to_dict())
    return model, triples, folder

