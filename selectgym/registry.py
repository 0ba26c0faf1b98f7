"""One registry helper for everything chosen by name: selectors, features, rewards, projectors, generators, algorithms.

Why one: every registry registers, looks up and checks options the same way and fails with the same one-line
message, so a user learns one rule and a new kind of plug-in needs no new lookup code. An entry is a class or
a dotted path ``pkg.mod:Class`` imported on first use, so a registry never has to import a heavy module (or one
on a higher floor) to list its names; a name that is not registered may itself be a dotted path to an outside
class.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from selectgym.errors import SelectgymError

#: a number in exponent form without a dot, which YAML 1.1 leaves a string
EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_options(pairs: Sequence[str], what: str = "--option", like: str = "mode=sim") -> dict[str, Any]:
    """``["mode=sim", "q=4"]`` -> ``{"mode": "sim", "q": 4}``: a class's options as the user writes them (``what``
    names where, ``like`` shows an example, in the error). Values are read as YAML scalars or lists."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise SelectgymError(f"{what} takes KEY=VALUE (like {like}), got {pair!r}")
        if key in options:
            raise SelectgymError(f"{what} gives {key} twice; give each option once")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise SelectgymError(f"{what} {pair!r}: the value is not a readable number, word or list") from None
        # YAML 1.1 reads 1e-3 (no dot) as a string; whoever writes it means the number
        options[key] = float(parsed) if isinstance(parsed, str) and EXPONENT_FLOAT.fullmatch(parsed) else parsed
    return options


def is_path(name: object) -> bool:
    """Whether ``name`` reads as a dotted path (``pkg.mod:Class`` or ``pkg.mod.Class``), not a registered name."""
    return isinstance(name, str) and (":" in name or "." in name)


def import_path(path: str, kind: str = "class") -> Any:
    """The object a dotted path names; a path that does not import is a one-line error naming ``kind``."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise SelectgymError(f"{path!r} is not a dotted path; write it as 'package.module:Class'")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise SelectgymError(f"cannot import {module!r} for {kind} {path!r} ({err}); check the path and that "
                             "the package is installed") from None
    if not hasattr(mod, attr):
        raise SelectgymError(f"module {module!r} has no {attr!r}; check the {kind} path {path!r}")
    return getattr(mod, attr)


def option_names(cls: type) -> list[str]:
    """The options a class takes: its dataclass fields, else its constructor's named parameters ('_x' left out)."""
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")]
    params = _parameters(cls)
    return [p.name for p in params or () if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and not p.name.startswith("_")]


def _parameters(cls: type) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):  # a class whose constructor cannot be inspected: nothing can be checked
        return None


def _takes_anything(cls: type) -> bool:
    params = _parameters(cls)
    return params is None or any(p.kind is p.VAR_KEYWORD for p in params)


class Registry(Mapping[str, Any]):
    """``name -> class`` (or ``name -> "pkg.mod:Class"``, imported when first asked for), in registration order.

    As a mapping it holds the entries as registered; :meth:`resolve` gives the class of a name or of a dotted
    path, :meth:`options` what it takes, :meth:`create` an instance with its options checked. ``base``: the
    class every entry must subclass; ``fixed``: leading constructor arguments the caller passes, which are not
    options (a reward's ``table``); ``paths=False`` accepts registered names only.
    """

    def __init__(self, kind: str, entries: Mapping[str, type | str] | None = None, *, base: type | None = None,
                 fixed: Sequence[str] = (), paths: bool = True) -> None:
        self.kind, self.base, self.fixed, self.paths = kind, base, tuple(fixed), paths
        self._entries: dict[str, type | str] = {}
        for name, entry in (entries or {}).items():
            self.register(name, entry)

    def __getitem__(self, name: str) -> type | str:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"

    def register(self, name: str, entry: type | str | None = None, *, replace: bool = False) -> Any:
        """Add ``name`` -> a class or a dotted path; with no entry, a class decorator that registers the class."""
        if entry is None:
            def decorate(cls: type) -> type:
                self.register(name, cls, replace=replace)
                return cls
            return decorate
        if not isinstance(name, str) or not name or is_path(name) and self.paths:
            raise SelectgymError(f"a {self.kind} name must be a plain word (dots and colons mean a dotted path), "
                                 f"got {name!r}")
        if name in self._entries and self._entries[name] is not entry and not replace:
            raise SelectgymError(f"{self.kind} {name!r} is already registered as {self._entries[name]!r}; pick "
                                 "another name or pass replace=True")
        self._entries[name] = entry
        return entry

    def unknown(self, name: object, also: Sequence[str] = ()) -> SelectgymError:
        """The one error for a name that is neither registered nor a dotted path (``also``: more accepted words)."""
        tail = ", or pass a dotted path pkg.mod:Class" if self.paths else ""
        return SelectgymError(f"unknown {self.kind} {name!r}; choose from {', '.join([*also, *self._entries])}{tail}")

    def knows(self, name: object) -> bool:
        """Whether ``name`` is registered, or (with ``paths``) could be a dotted path; nothing is imported."""
        return name in self._entries or self.paths and is_path(name)

    def resolve(self, name: str | type, also: Sequence[str] = ()) -> type:
        """The class registered as ``name``, or the class a dotted path names, checked against ``base``."""
        if inspect.isclass(name):
            cls: Any = name
        elif name in self._entries:
            entry = self._entries[name]
            cls = import_path(entry, self.kind) if isinstance(entry, str) else entry
        elif self.paths and is_path(name):
            cls = import_path(name, self.kind)
        else:
            raise self.unknown(name, also)
        if self.base is not None and not (inspect.isclass(cls) and issubclass(cls, self.base)):
            raise SelectgymError(f"{name!r} is not a {self.base.__name__} subclass; a custom {self.kind} must "
                                 f"subclass {self.base.__module__}.{self.base.__qualname__}")
        return cls

    def options(self, name: str | type) -> list[str]:
        """The option names ``name`` takes (``fixed`` arguments left out)."""
        return [n for n in option_names(self.resolve(name)) if n not in self.fixed]

    def check_options(self, name: str | type, options: Mapping[str, Any] | Sequence[str]) -> type:
        """The class of ``name``, after a one-line error for any option it does not take (listing those it does)."""
        cls = self.resolve(name)
        if _takes_anything(cls):
            return cls
        known = self.options(cls)
        unknown = sorted(set(options) - set(known))
        if unknown:
            shown = name if isinstance(name, str) else getattr(name, "__name__", name)
            raise SelectgymError(f"{self.kind} {shown!r} has no option(s) {', '.join(unknown)}; it takes: "
                                 f"{', '.join(known) or 'no options'}")
        return cls

    def create(self, name: str | type, *args: Any, **options: Any) -> Any:
        """An instance of ``name`` from ``args`` (the ``fixed`` arguments) and checked ``options``."""
        cls = self.check_options(name, options)
        try:
            inspect.signature(cls).bind(*args, **options)
        except TypeError as err:  # a missing required option, or one given twice
            raise SelectgymError(f"bad options for the {self.kind} {name!r}: {err}") from None
        except ValueError:
            pass
        return cls(*args, **options)

    def classes(self, names: Sequence[str] | None = None) -> dict[str, type]:
        """``name -> class`` for every registered name (or ``names``), importing lazy entries."""
        return {n: self.resolve(n) for n in (self._entries if names is None else names)}

    def where(self, test: Callable[[type], bool], names: Sequence[str] | None = None) -> list[str]:
        """The registered names (or ``names``) whose class passes ``test`` (a class attribute, say)."""
        return [n for n, cls in self.classes(names).items() if test(cls)]


__all__ = ["Registry", "import_path", "is_path", "option_names"]
