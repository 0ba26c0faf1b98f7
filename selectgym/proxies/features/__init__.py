"""The features a proxy can compute, looked up by name in ``FEATURES``.

A feature is one ``Feature`` subclass (``base.py``: a dataclass whose fields are its options, with class
attributes for the pool kind it reads, whether it needs validation data and the arrays it writes) and one
entry here. Every list of "which features" is derived from ``FEATURES``: the bench's pools
(``features_for_pool``), the agents' training pools, the default list, the flags and help of ``selectgym
features``. A feature outside selectgym is registered with ``register_feature("pkg.mod:Class")``, or
computed unregistered with ``selectgym features --features pkg.mod:Class``.
"""

from __future__ import annotations

from collections.abc import Sequence

from selectgym.errors import SelectgymError
from selectgym.proxies.features.base import POOL_KINDS, Feature, option_defaults
from selectgym.proxies.features.dpo_gap import DpoGap
from selectgym.proxies.features.hidden import Hidden
from selectgym.proxies.features.sampled import Grpo, Nice, nice_summary
from selectgym.proxies.features.sft import Embedding, Grad, GradAdam, Length, Loss, response_lengths
from selectgym.registry import Registry, is_path, option_names

#: feature name -> class, in computing order; entries are classes (their metadata is read to derive lists)
FEATURES = Registry("feature", base=Feature)


def feature_class(name: str | type) -> type[Feature]:
    """The class registered as ``name``, or the class a dotted path names, checked to be a usable feature."""
    cls = FEATURES.resolve(name)
    if not cls.name or not (cls.train_arrays or cls.val_arrays):
        raise SelectgymError(f"feature {name!r} needs a name and at least one array (train_arrays, val_arrays)")
    if cls.pool_kind not in POOL_KINDS:
        raise SelectgymError(f"feature {cls.name!r} has pool_kind {cls.pool_kind!r}; choose one of "
                             f"{', '.join(POOL_KINDS)}")
    return cls


def register_feature(feature: type[Feature] | str) -> type[Feature]:
    """Add a feature class (or the dotted path ``pkg.mod:Class`` of one) to ``FEATURES`` under its ``name``.

    Its options join the flat namespace of settings (they are flags too), so a name another feature owns is refused.
    """
    cls = feature_class(feature)
    taken = {opt: other.name for other in FEATURES.values() if other is not cls for opt in option_names(other)}
    clash = sorted(set(option_names(cls)) & set(taken))
    if clash:
        raise SelectgymError(f"feature {cls.name!r} has option(s) {', '.join(clash)}, which feature "
                             f"{taken[clash[0]]!r} owns; option names are flags too, so give them another name")
    FEATURES.register(cls.name, cls)
    return cls


for _builtin in (Grad, GradAdam, Loss, Length, Embedding, DpoGap, Nice, Grpo, Hidden):
    register_feature(_builtin)

#: the features that ship with selectgym: their options were settings of every store's config before features
#: carried them, so ``FeatureConfig`` keeps them in every store key, and stores written before stay found
BUILTIN = tuple(FEATURES)


def features_for_pool(kind: str, rollouts: bool = True, also: Sequence[str] = ()) -> list[str]:
    """The registered features computed on the suite's ``kind`` pool (sft, preference, verifiable), in registry
    order; ``rollouts=False`` leaves out those that sample completions (the agents' training pools), and
    on-demand features come only when ``also`` names them."""
    if kind not in POOL_KINDS:
        raise SelectgymError(f"unknown pool kind {kind!r}; choose one of {', '.join(POOL_KINDS)}")
    return [name for name, cls in FEATURES.items() if cls.pool_kind == kind and (rollouts or not cls.rollouts)
            and (not cls.on_demand or name in also)]


def default_features(gradient_type: str) -> list[str]:
    """The features computed when none are named (``grad_adam`` only with gradient_type adam)."""
    return [name for name, cls in FEATURES.items() if cls.in_default(gradient_type)]


def describe_defaults() -> str:
    """The default list for help texts: 'grad, grad_adam (gradient_type adam), loss, length, embedding'."""
    adam, sgd = default_features("adam"), default_features("sgd")
    return ", ".join(n if n in sgd else f"{n} (gradient_type adam)" for n in adam) + \
        "".join(f", {n} (gradient_type sgd)" for n in sgd if n not in adam)


def feature_of_array(array: str) -> str:
    """The feature that writes an array (what a user must ask ``selectgym features`` for)."""
    base = array.partition("@")[0]
    for name, cls in FEATURES.items():
        if base in cls.train_arrays or base in cls.val_arrays:
            return name
    return base


__all__ = ["BUILTIN", "FEATURES", "POOL_KINDS", "Feature", "default_features", "describe_defaults", "feature_class",
           "feature_of_array", "features_for_pool", "is_path", "nice_summary", "option_defaults", "option_names",
           "register_feature", "response_lengths"]
