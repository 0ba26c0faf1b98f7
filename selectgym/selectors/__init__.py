"""Selectors: one module per method, looked up by name in ``SELECTORS``.

A name not in ``SELECTORS`` may be a dotted path to your own ``Selector`` subclass
(``"mypkg.mymod:MySelector"`` or ``"mypkg.mymod.MySelector"``).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

from selectgym.budget import resolve_budget
from selectgym.errors import SelectgymError
from selectgym.selectors.base import Selection, Selector

#: method name -> ``"module:Class"``, imported only when asked for.
SELECTORS: dict[str, str] = {
    "random": "selectgym.selectors.uniform:RandomSelector",
    "less": "selectgym.selectors.less:LessSelector",
    "nice": "selectgym.selectors.nice:NiceSelector",
    "gradalign": "selectgym.selectors.gradalign:GradAlignSelector",
    "dpo_gap": "selectgym.selectors.dpo_gap:DpoGapSelector",
    "policy": "selectgym.agents.selector:PolicySelector",
}


def _import(path: str) -> Any:
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise SelectgymError(f"{path!r} is not a dotted path; write it as 'package.module:Class'")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise SelectgymError(f"cannot import {module!r} for selector {path!r} ({err}); check the path and that "
                             "the package is installed") from None
    if not hasattr(mod, attr):
        raise SelectgymError(f"module {module!r} has no {attr!r}; check the selector path {path!r}")
    return getattr(mod, attr)


def selector_class(name: str) -> type[Selector]:
    """The class registered as ``name``, or the class a dotted path names."""
    if name in SELECTORS:
        cls = _import(SELECTORS[name])
    elif "." in name or ":" in name:
        cls = _import(name)
    else:
        raise SelectgymError(f"unknown selector {name!r}; choose one of {', '.join(SELECTORS)} "
                             "or give a dotted path like 'mypkg.mymod:MySelector'")
    if not (inspect.isclass(cls) and issubclass(cls, Selector)):
        raise SelectgymError(f"{name!r} is not a Selector subclass; a custom selector must subclass "
                             "selectgym.selectors.Selector")
    return cls


def option_names(cls: type[Selector]) -> list[str]:
    """The options (constructor arguments) a selector class takes."""
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.init]
    params = inspect.signature(cls).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def get_selector(name: str, **options: Any) -> Selector:
    """A selector instance by registered name or dotted path, with its options.

    An option the selector does not take is a one-line error that lists the ones it does.
    """
    cls = selector_class(name)
    known = option_names(cls)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SelectgymError(f"selector {name!r} has no option(s) {', '.join(unknown)}; it takes: "
                             f"{', '.join(known) or 'no options'}")
    return cls(**options)


__all__ = ["SELECTORS", "Selection", "Selector", "get_selector", "option_names", "resolve_budget", "selector_class"]
