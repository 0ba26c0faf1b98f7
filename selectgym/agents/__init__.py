"""Agents that learn data selection: train SB3 algorithms on the selection envs, save and apply policies."""

from selectgym.agents.apply import apply_policy, rollout
from selectgym.agents.config import ALGORITHMS, AgentConfig
from selectgym.agents.policy_file import SavedPolicy, load_policy, save_policy
from selectgym.agents.train import train_agent

__all__ = ["ALGORITHMS", "AgentConfig", "SavedPolicy", "apply_policy", "load_policy", "rollout", "save_policy",
           "train_agent"]
