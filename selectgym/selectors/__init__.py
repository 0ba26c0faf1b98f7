"""Selectors: one module per method, looked up by name in ``SELECTORS`` (a ``selectgym.registry.Registry``).

A name not in ``SELECTORS`` may be a dotted path to your own ``Selector`` subclass
(``"mypkg.mymod:MySelector"`` or ``"mypkg.mymod.MySelector"``).
"""

from __future__ import annotations

from typing import Any

from selectgym.budget import resolve_budget
from selectgym.registry import Registry, option_names
from selectgym.selectors.base import Selection, Selector

#: method name -> ``"module:Class"``, imported only when asked for (``policy`` lives with the agents, a floor up).
SELECTORS = Registry("selector", {
    "random": "selectgym.selectors.uniform:RandomSelector",
    "less": "selectgym.selectors.less:LessSelector",
    "nice": "selectgym.selectors.nice:NiceSelector",
    "gradalign": "selectgym.selectors.gradalign:GradAlignSelector",
    "dpo_gap": "selectgym.selectors.dpo_gap:DpoGapSelector",
    "rds": "selectgym.selectors.rds:RdsSelector",
    "length": "selectgym.selectors.length:LengthSelector",
    "learnability": "selectgym.selectors.learnability:LearnabilitySelector",
    "policy": "selectgym.agents.selector:PolicySelector",
}, base=Selector)


def selector_class(name: str) -> type[Selector]:
    """The class registered as ``name``, or the class a dotted path names."""
    return SELECTORS.resolve(name)


def get_selector(name: str, **options: Any) -> Selector:
    """A selector instance by registered name or dotted path, with its options.

    An option the selector does not take is a one-line error that lists the ones it does.
    """
    return SELECTORS.create(name, **options)


__all__ = ["SELECTORS", "Selection", "Selector", "get_selector", "option_names", "resolve_budget", "selector_class"]
