"""A permutation-invariant actor-critic for ExampleSelect: one shared network scores every candidate.

The observation holds ``chunk`` candidates of ``P`` numbers each. The actor applies the same MLP to every
candidate and uses the scores as the logits of a categorical over candidates, so relabelling the candidates
relabels the logits and nothing else, and the trained scorer can rate any number of examples at once (a
whole pool when the policy is applied). The critic averages a shared per-candidate encoding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class CandidateNetworks(nn.Module):
    """SB3's ``mlp_extractor`` slot: per-candidate scores as the actor latent, a pooled encoding for the critic."""

    def __init__(self, per_candidate: int, chunk: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.per_candidate, self.chunk = per_candidate, chunk
        self.scorer = _mlp([per_candidate, *hidden, 1])
        self.encoder = nn.Sequential(_mlp([per_candidate, *hidden]), nn.Tanh())
        self.latent_dim_pi, self.latent_dim_vf = chunk, hidden[-1]

    def _candidates(self, features: torch.Tensor) -> torch.Tensor:
        return features.reshape(features.shape[0], -1, self.per_candidate)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.scorer(self._candidates(features)).squeeze(-1)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._candidates(features)).mean(dim=1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


class CandidateScorerPolicy(ActorCriticPolicy):
    """ActorCriticPolicy whose action logits are the shared scorer's outputs (no mixing layer on top)."""

    def __init__(self, *args, per_candidate: int, chunk: int, **kwargs) -> None:
        self.per_candidate, self.chunk = int(per_candidate), int(chunk)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        hidden = self.net_arch if isinstance(self.net_arch, list) and self.net_arch else [64, 64]
        self.mlp_extractor = CandidateNetworks(self.per_candidate, self.chunk, [int(h) for h in hidden])

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the scores are the logits; a dense layer would break the symmetry
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def score(self, rows: np.ndarray) -> np.ndarray:
        """The scorer's value for each row of an ``(n, P)`` candidate matrix (any ``n``)."""
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(rows, dtype=np.float32), device=self.device)
            return self.mlp_extractor.scorer(x).squeeze(-1).cpu().numpy()
