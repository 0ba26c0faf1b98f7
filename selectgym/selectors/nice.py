"""NICE (ICML 2025): LESS scoring against policy gradients of a non-differentiable target metric.

The validation side is ``pg_grad``: the reward-weighted REINFORCE gradient of on-policy samples
(computed by the feature pipeline). The training side, checkpoints and subtasks work as in LESS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from selectgym.selectors.less import LessSelector


@dataclass
class NiceSelector(LessSelector):
    """Mean cosine of the training gradient with each validation policy gradient.

    Options: ``gradient_type`` ``adam`` (default; the Adam-normalised training gradient, which DataFlex
    computes and then drops by mistake) or ``sgd`` (the raw gradient); ``subtasks``, ``balance``,
    ``skip_nonfinite`` and ``loss_weight`` as in LESS.
    """

    name: ClassVar[str] = "nice"
    val_feature: ClassVar[str] = "pg_grad"
