"""Gymnasium environments for learning data selection, registered as versioned ids.

``selectgym/ClusterSelect-v0`` is the paper's MDP (pick K-means clusters, mask observation);
``selectgym/FeatureSelect-v0`` describes clusters by proxy-feature summaries so one policy serves many pools;
``selectgym/ExampleSelect-v0`` shows candidates one by one, with their own features, drawn from many pools.
Both take ``table`` (and ``val_table``) keyword arguments: ``gymnasium.make("selectgym/FeatureSelect-v0",
table=train, val_table=val, budget=0.05)``.
"""

from gymnasium.envs.registration import register, registry

from selectgym.envs.cluster_select import ClusterSelectEnv
from selectgym.envs.example_select import ExampleSelectEnv
from selectgym.envs.feature_select import FeatureSelectEnv
from selectgym.envs.rewards import REWARDS, LinearReward, NoReward, ProxyReward, StepReward, make_reward

CLUSTER_SELECT = "selectgym/ClusterSelect-v0"
FEATURE_SELECT = "selectgym/FeatureSelect-v0"
EXAMPLE_SELECT = "selectgym/ExampleSelect-v0"

if CLUSTER_SELECT not in registry:
    register(id=CLUSTER_SELECT, entry_point="selectgym.envs.cluster_select:ClusterSelectEnv")
if FEATURE_SELECT not in registry:
    register(id=FEATURE_SELECT, entry_point="selectgym.envs.feature_select:FeatureSelectEnv")
if EXAMPLE_SELECT not in registry:
    register(id=EXAMPLE_SELECT, entry_point="selectgym.envs.example_select:ExampleSelectEnv")

__all__ = ["CLUSTER_SELECT", "EXAMPLE_SELECT", "FEATURE_SELECT", "REWARDS", "ClusterSelectEnv", "ExampleSelectEnv",
           "FeatureSelectEnv", "LinearReward",
           "NoReward", "ProxyReward", "StepReward", "make_reward"]
