"""A saved policy: one SB3 zip whose ``selectgym.json`` entry (the sidecar) says what it observes and expects.

SB3 reads only its own entries of the archive, so the sidecar travels inside it; policies saved as two files
(``policy.zip`` + ``policy.json``, before the sidecar moved in) still load. The sidecar records the env id
and settings, the observation schema (``n_clusters``, per-cluster stats, features observed), the feature
arrays and feature config it was trained on, the reward, the algorithm and the versions. ``load_policy``
rebuilds the agent and checks new features against that record.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from selectgym import __version__
from selectgym.agents.config import algorithm_class
from selectgym.envs.selection import SelectionEnv
from selectgym.envs.summaries import available_features
from selectgym.errors import SelectgymError
from selectgym.proxies.feature_config import current_names
from selectgym.proxies.table import FeatureTable
from selectgym.utils import atomic_path

FORMAT = "selectgym-policy/1"
#: observed features that need the target (validation) table
VAL_FEATURES = ("alignment",)
#: feature-config settings that change what the observed numbers mean: a policy is applied only where they agree
SCHEMA_SETTINGS = ("model", "projection", "proj_dim", "seed", "lora_r", "lora_alpha", "lora_targets",
                   "gradient_type", "adam_eps")


#: the sidecar's name inside the policy zip
SIDECAR_ENTRY = "selectgym.json"
#: the name of the policy that ships with the package: ``configs/policy_transfer.yaml`` trained on the shipped
#: ``mini`` (``selectgym select --policy default``)
DEFAULT_POLICY_NAME = "default"
DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "policies" / "default.zip"


def policy_path(name_or_path: str | Path) -> Path:
    """``default`` -> the shipped policy (unless a file of that name is here); any other value is a path."""
    if str(name_or_path) == DEFAULT_POLICY_NAME and not Path(name_or_path).exists():
        return DEFAULT_POLICY
    return Path(name_or_path)


def sidecar_path(policy_path: str | Path) -> Path:
    """``policy.zip`` -> ``policy.json``: where a two-file policy kept its sidecar."""
    return Path(policy_path).with_suffix(".json")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar inside the policy zip, else beside it (two-file policies); one-line errors otherwise."""
    path = Path(path)
    if not path.exists():
        raise SelectgymError(f"policy file {path} not found; train one with `selectgym train-agent`")
    damaged = f"{path} is not a readable policy ({{}}); copy it again or retrain it with `selectgym train-agent`"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            text = archive.read(SIDECAR_ENTRY).decode("utf-8") if SIDECAR_ENTRY in names else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as err:
        raise SelectgymError(damaged.format(f"{type(err).__name__}: {err}")) from None
    if "data" not in names:  # every SB3 archive has its 'data' entry: this is a cut or foreign zip
        raise SelectgymError(damaged.format("no stable-baselines3 'data' entry in the zip"))
    where = f"{path}:{SIDECAR_ENTRY}"
    if text is None:
        side = sidecar_path(path)
        if not side.exists():
            raise SelectgymError(f"{path} has no sidecar ({SIDECAR_ENTRY} inside or {side.name} beside it); save "
                                 f"policies with selectgym.agents.save_policy")
        text, where = side.read_text(encoding="utf-8"), str(side)
    try:
        sidecar = json.loads(text)
    except json.JSONDecodeError as err:
        raise SelectgymError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(sidecar, dict):
        raise SelectgymError(f"{where}: a policy sidecar is a JSON object; copy it again or retrain the policy")
    return sidecar


def setting_differences(trained: dict[str, Any], given: dict[str, Any], who: str = "policy") -> list[str]:
    """How the features described by ``given`` (a table's meta: ``config`` and the proxy's ``weights`` digest)
    differ from those ``trained`` describes, in the settings that make the numbers.

    The proxy is told apart by its weights' digest where both sides record one: two builds of one model folder
    differ, while the same weights named by another path agree. Without digests its name is compared.
    """
    old = current_names(trained.get("config") or {})
    new = current_names(given.get("config") or {})
    digests = trained.get("weights"), given.get("weights")
    differ = []
    if all(digests) and digests[0] != digests[1]:
        differ.append(f"proxy weights {digests[1]} of {new.get('model', '?')!r} ({who}: {digests[0]} of "
                      f"{old.get('model', '?')!r})")
    skip = {"model"} if all(digests) else set()
    differ += [f"{k} {new[k]!r} ({who}: {old[k]!r})" for k in SCHEMA_SETTINGS
               if k not in skip and k in old and k in new and old[k] != new[k]]
    return differ


def describe_policy(algo: str, env_id: str, env: SelectionEnv, env_kwargs: dict[str, Any],
                    feature_config: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> dict:
    """The sidecar of a policy trained on ``env``."""
    import stable_baselines3

    kwargs = {k: v for k, v in env_kwargs.items() if k != "budget"}
    kwargs["features"] = env.observation_schema().get("features", kwargs.get("features"))
    return {
        "format": FORMAT, "selectgym_version": __version__, "sb3_version": stable_baselines3.__version__,
        "algorithm": algo, "env_id": env_id, "env_kwargs": kwargs, "observation": env.observation_schema(),
        "features_schema": env.table.schema(), "feature_config": feature_config,
        "proxy_weights": env.table.meta.get("weights"),
        "reward": env.reward.describe(), "trained_on": {"examples": env.n_examples, "budget": env.budget},
        "config": config,
    }


def save_policy(model, path: str | Path, sidecar: dict[str, Any]) -> Path:
    """Write ``path``: the SB3 zip with the sidecar inside, atomically (one file, one rename)."""
    path = Path(path)
    if path.suffix != ".zip":
        raise SelectgymError(f"a policy file must end in .zip, got {path}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            model.save(fh)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(SIDECAR_ENTRY, json.dumps(sidecar, indent=2, sort_keys=True, default=str))
    return path


@dataclass
class SavedPolicy:
    """A loaded agent with its sidecar; builds the env it expects and acts greedily among open clusters."""

    model: Any
    sidecar: dict[str, Any]
    path: Path

    def check(self, table: FeatureTable, val_table: FeatureTable | None) -> None:
        """Raise a one-line error if these features cannot produce the observations the policy was trained on."""
        kwargs = self.sidecar["env_kwargs"]
        cluster_on = kwargs.get("cluster_feature", "embedding")
        if not table.has(cluster_on):
            raise SelectgymError(f"policy {self.path.name} clusters on {cluster_on!r}, which the given features lack; "
                                 f"compute them with the policy's feature config")
        wanted = list(self.sidecar["observation"].get("features") or [])
        have = available_features(table, val_table, kwargs.get("train_grad", "grad"), kwargs.get("val_grad", "grad"))
        missing = [f for f in wanted if f not in have]
        if missing and val_table is None and set(missing) <= set(VAL_FEATURES):
            raise SelectgymError(f"policy {self.path.name} observes {', '.join(missing)} against a target set, and "
                                 f"these features have no validation table: pass --val FILE (the target examples)")
        if missing:
            config = self.sidecar.get("feature_config")
            hint = f" {json.dumps(config, sort_keys=True)}" if config else ""
            raise SelectgymError(f"policy {self.path.name} observes {wanted} but the given features lack {missing} "
                                 f"(they provide {have}); recompute them with the policy's feature config{hint}")
        self.check_schema(table)
        n_clusters = int(self.sidecar["observation"]["n_clusters"])
        if len(table) < n_clusters:
            raise SelectgymError(f"policy {self.path.name} needs at least {n_clusters} examples (one per cluster), "
                                 f"the pool has {len(table)}")

    def check_schema(self, table: FeatureTable) -> None:
        """Every recorded schema item must agree: array shapes, and the settings that make the numbers (proxy
        model, projection kind/dim/seed, adapter, gradient type) where the features record them."""
        recorded = self.sidecar.get("features_schema") or {}
        shapes = table.schema()
        wrong = [f"{name} {shapes[name]} (policy: {shape})" for name, shape in sorted(recorded.items())
                 if name in shapes and list(shapes[name]) != list(shape)]
        if wrong:
            raise SelectgymError(f"policy {self.path.name} was trained on features of other shapes: "
                                 f"{'; '.join(wrong)}; recompute the features with the policy's feature config "
                                 f"(same proj dim)")
        trained = {"config": self.sidecar.get("feature_config") or {}, "weights": self.sidecar.get("proxy_weights")}
        differ = setting_differences(trained, table.meta)
        if differ:
            raise SelectgymError(f"policy {self.path.name} was trained on features made with other settings: "
                                 f"{'; '.join(differ)}; recompute the features with the policy's feature config")

    def make_env(self, table: FeatureTable, val_table: FeatureTable | None, budget: float | int,
                 reward: str = "none", reward_kwargs: dict[str, Any] | None = None) -> SelectionEnv:
        """The env this policy was trained on, built over new features (checked first)."""
        self.check(table, val_table)
        env = gym.make(self.sidecar["env_id"], table=table, val_table=val_table, budget=budget, reward=reward,
                       reward_kwargs=reward_kwargs, **self.sidecar["env_kwargs"]).unwrapped
        expected = list(self.sidecar["observation"]["shape"])
        if list(env.observation_space.shape) != expected:
            raise SelectgymError(f"policy {self.path.name} expects observations of shape {expected}, the env gives "
                                 f"{list(env.observation_space.shape)}")
        return env

    def action_values(self, obs: np.ndarray) -> np.ndarray:
        """The policy's preference for every action: logits (PPO, A2C, MaskablePPO) or Q-values (DQN)."""
        import torch

        obs_t, _ = self.model.policy.obs_to_tensor(obs)
        with torch.no_grad():
            if self.sidecar["algorithm"] == "dqn":
                values = self.model.q_net(obs_t)
            else:
                values = self.model.policy.get_distribution(obs_t).distribution.logits
        return values.cpu().numpy()[0]

    def act(self, obs: np.ndarray, mask: np.ndarray) -> int:
        """The preferred action among those ``mask`` allows (deterministic)."""
        values = np.where(mask, self.action_values(obs), -np.inf)
        return int(np.argmax(values))


def load_policy(path: str | Path, table: FeatureTable | None = None,
                val_table: FeatureTable | None = None) -> SavedPolicy:
    """Load a policy (a .zip, or ``default`` for the shipped one) and its sidecar; with ``table``, also check that
    those features fit it."""
    path = policy_path(path)
    sidecar = read_sidecar(path)
    side = f"{path.name}'s sidecar"
    if sidecar.get("format") != FORMAT:
        raise SelectgymError(f"{side}: format {sidecar.get('format')!r} is not {FORMAT!r}; retrain the policy "
                             f"with this selectgym version")
    lacking = [k for k in ("algorithm", "env_id", "env_kwargs", "observation") if k not in sidecar]
    if lacking:
        raise SelectgymError(f"{side} lacks {', '.join(lacking)}; copy it again or retrain the policy")
    try:
        model = algorithm_class(sidecar.get("algorithm", "?")).load(path, device="cpu")
    except SelectgymError:
        raise
    except Exception as err:  # zipfile, pickle and torch each raise their own types for a damaged file
        raise SelectgymError(f"{path} is not a readable policy ({type(err).__name__}: "
                             f"{(str(err).splitlines() or [''])[0][:200]}); copy it again or retrain it with "
                             f"`selectgym train-agent`") from None
    policy = SavedPolicy(model, sidecar, path)
    if table is not None:
        policy.check(table, val_table)
    return policy
