"""Gymnasium environments for learning data selection, registered as versioned ids.

``selectgym/ClusterSelect-v0`` is the paper's MDP (pick K-means clusters, mask observation);
``selectgym/FeatureSelect-v0`` describes clusters by proxy-feature summaries so one policy serves many pools;
``selectgym/ExampleSelect-v0`` shows candidates one by one, with their own features, drawn from many pools.
Both take ``table`` (and ``val_table``) keyword arguments: ``gymnasium.make("selectgym/FeatureSelect-v0",
table=train, val_table=val, budget=0.05)``. Each env class declares what the agent code needs to know of it
(``AgentTraits``); ``env_class(env_id)`` finds it.
"""

from gymnasium.envs.registration import register, registry

from selectgym.envs.cluster_select import ClusterSelectEnv
from selectgym.envs.example_select import ExampleSelectEnv
from selectgym.envs.feature_select import FeatureSelectEnv
from selectgym.envs.rewards import REWARDS, LinearReward, NoReward, ProxyReward, StepReward, make_reward
from selectgym.envs.selection import AgentTraits
from selectgym.registry import Registry

CLUSTER_SELECT = "selectgym/ClusterSelect-v0"
FEATURE_SELECT = "selectgym/FeatureSelect-v0"
EXAMPLE_SELECT = "selectgym/ExampleSelect-v0"

#: env id -> class; each is registered with Gymnasium under its id.
ENVS = Registry("env", {CLUSTER_SELECT: ClusterSelectEnv, FEATURE_SELECT: FeatureSelectEnv,
                        EXAMPLE_SELECT: ExampleSelectEnv}, base=AgentTraits, paths=False)

for _id, _cls in ENVS.items():
    if _id not in registry:
        register(id=_id, entry_point=f"{_cls.__module__}:{_cls.__name__}")


def env_class(env_id: str) -> type[AgentTraits]:
    """The class registered as ``env_id``."""
    return ENVS.resolve(env_id)


__all__ = ["CLUSTER_SELECT", "ENVS", "EXAMPLE_SELECT", "FEATURE_SELECT", "REWARDS", "AgentTraits", "ClusterSelectEnv",
           "ExampleSelectEnv", "FeatureSelectEnv", "LinearReward", "NoReward", "ProxyReward", "StepReward",
           "env_class", "make_reward"]
