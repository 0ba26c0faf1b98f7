"""The ``Feature`` base: a dataclass whose fields are the feature's options and whose class attributes say what it
reads and writes, so every list of "which features" (bench, training pools, defaults, flags) is derived, not kept.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from selectgym.data.pool import Example, Pool
from selectgym.errors import SelectgymError

#: the pools of a suite a feature is computed on (``data.suite`` writes one file of each)
POOL_KINDS = ("sft", "preference", "verifiable")


@dataclass
class Feature:
    """One named feature; an instance holds its options.

    Fields are options. Their names are flat and unique across features because they are also the flags and
    YAML keys of ``selectgym features`` and part of the store's key (``dpo_beta``, ``nice_topk``). Class
    attributes:

    * ``pool_kind``: the suite pool (``POOL_KINDS``) the bench and the agents' training pools compute it on;
    * ``needs_val``: it cannot be computed without a validation file;
    * ``rollouts``: it samples completions (slow: the agents' training pools leave it out);
    * ``default``: it is in the default feature list (``in_default`` may ask the gradient type);
    * ``on_demand``: left out of a pool's standard set; computed when named, or by the bench when a method's
      selector ``reads`` it;
    * ``train_arrays`` / ``val_arrays``: the arrays it writes to the training / validation table.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    pool_kind: ClassVar[str] = "sft"
    needs_val: ClassVar[bool] = False
    rollouts: ClassVar[bool] = False
    default: ClassVar[bool] = False
    on_demand: ClassVar[bool] = False
    train_arrays: ClassVar[tuple[str, ...]] = ()
    val_arrays: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def in_default(cls, gradient_type: str) -> bool:
        """Whether the default feature list holds it (``FeatureConfig.gradient_type``: adam or sgd)."""
        return cls.default

    def check_config(self, cfg) -> None:
        """Raise a one-line error when the options do not fit the shared settings (``cfg``: a ``FeatureConfig``)."""

    def check(self, cfg, pool: Pool, val: Pool | None) -> None:
        """Raise a one-line error when these pools cannot give the feature (before any model loads)."""
        if self.needs_val and val is None:
            raise SelectgymError(f"{self.name} writes {', '.join(self.val_arrays)} to the validation table: give a "
                                 "validation file")

    def train(self, proxy, examples: Sequence[Example], cache: dict[str, Any]) -> dict[str, np.ndarray]:
        """The training-table arrays for one shard (``proxy``: the warmed-up ``Proxy``; ``cache``: shared by the
        features of this shard, for passes they share)."""
        return {}

    def val(self, proxy, examples: Sequence[Example], cache: dict[str, Any]) -> dict[str, np.ndarray]:
        """The validation-table arrays."""
        return {}


def option_defaults(cls: type) -> dict[str, Any]:
    """Each option's default value (a fresh copy of a mutable one), as ``registry.option_names`` lists them."""
    out = {}
    for f in dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ():
        if f.init and not f.name.startswith("_"):
            out[f.name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return out


def choice(name: str, value: str, allowed: Sequence[str]) -> None:
    """A one-line error unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise SelectgymError(f"{name} {value!r} is unknown; choose one of {', '.join(allowed)}")


def positive(name: str, value: float, example: str) -> None:
    """A one-line error unless ``value`` is a finite number above 0."""
    if not math.isfinite(value) or value <= 0:
        raise SelectgymError(f"--{name.replace('_', '-')} must be a positive number, e.g. {example}; got {value}")
