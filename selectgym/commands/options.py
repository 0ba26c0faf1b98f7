"""Flags from config dataclasses, and ``--config`` YAML files checked against them: the one way every
subcommand takes its settings (dataclass defaults, then the YAML file, then flags; unknown keys are errors)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Sequence
from typing import Any

import yaml

from selectgym.budget import parse_budget
from selectgym.errors import SelectgymError


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """Give a (sub)command a ``--config FILE`` whose YAML keys become defaults for its flags."""
    parser.add_argument("--config", default=None, help="YAML file of settings; flags override it")


#: seeds reach numpy, torch and scikit-learn, which all take [0, 2**32)
MAX_SEED = 2**32 - 1


def _seed(text: str) -> int:
    """A seed flag's value (``seed``, ``*_seed``, ``seeds``): a whole number from 0 to ``MAX_SEED``, checked while
    the flags are read, before any model or data loads."""
    try:
        value = int(str(text).strip())
    except ValueError:
        value = None
    if value is None or not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed; use a whole number from 0 to {MAX_SEED}, e.g. 0")
    return value


def positive_int(text: str) -> int:
    """A count flag's value (``--threads``): a whole number >= 1."""
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count; use a whole number >= 1, e.g. 1")
    return value


def yaml_problem(err: yaml.YAMLError) -> str:
    """The one line of a YAML error worth showing (tags like ``!!python/...`` are never constructed)."""
    problem = (getattr(err, "problem", None) or str(err).strip().splitlines()[0]).replace("tag:yaml.org,2002:", "!!")
    if isinstance(err, yaml.constructor.ConstructorError):
        problem += "; tags are not read, only plain values, lists and mappings"
    return problem


def _mapping(text: str) -> dict[str, Any]:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid YAML ({yaml_problem(err)}); write a mapping like "
                                         f"'{{lr: 1.0}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping like '{{lr: 1.0}}', got {text!r}")
    return value


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> list[str]:
    """One flag per field of a config dataclass (help from the field's metadata); returns the field names.

    Lists take several values (``--seeds 0 1 2``; with ``metadata={"repeatable": True}`` the flag may also come
    again, ``--option a=1 --option b=2``), dicts take YAML (``--reward-kwargs '{lr: 1}'``), booleans get
    ``--x/--no-x``; a field named ``budget`` accepts a count or a share.
    """
    hints = typing.get_type_hints(cls)
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kwargs: dict[str, Any] = {"default": default, "help": f.metadata.get("help", ""), "dest": f.name}
        args = [t for t in typing.get_args(kind) if t is not type(None)]
        if typing.get_origin(kind) in (typing.Union, getattr(types, "UnionType", None)) and args:
            kind = args[0]
        origin = typing.get_origin(kind)
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.name == "budget":
            kwargs["type"] = parse_budget
        elif f.name == "budgets":  # a count stays an int: 2 is two examples, never 200%
            kwargs.update(type=parse_budget, nargs="+")
        elif origin is dict:
            kwargs["type"] = _mapping
        elif origin is list:
            kwargs.update(type=typing.get_args(kind)[0], nargs="+")
            if f.metadata.get("repeatable"):
                kwargs["action"] = "extend"
        else:
            kwargs["type"] = kind
        if f.name in ("seed", "seeds") or f.name.endswith("_seed"):
            kwargs["type"] = _seed
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)
        names.append(f.name)
    return names


def dataclass_from_args(cls: type, args: argparse.Namespace, names: Sequence[str]):
    """Build a config dataclass from parsed flags (its ``__post_init__`` checks run)."""
    return cls(**{n: getattr(args, n) for n in names})


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> argparse.Namespace:
    """Re-parse ``argv`` with the YAML file's values as defaults (so flags still win)."""
    path = getattr(args, "config", None)
    if not path:
        return args
    yaml_defaults(parser, path)
    return parser.parse_args(argv)


def yaml_defaults(parser: argparse.ArgumentParser, path: str | os.PathLike) -> None:
    """Make a YAML file's settings the parser's defaults, each checked against its flag (unknown, renamed or
    mistyped keys are one-line errors)."""
    try:
        with open(path, encoding="utf-8") as fh:
            values = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise SelectgymError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise SelectgymError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise SelectgymError(f"{path}: a config file must be a mapping of setting: value")
    actions = {a.dest: a for a in parser._actions}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - set(actions))
    renamed = parser.get_default("_renamed") or {}
    moved = [f"{k} is now {renamed[k]}" for k in unknown if k in renamed]
    if moved:
        raise SelectgymError(f"{path}: {'; '.join(moved)} (one name for one idea across the commands); rename the "
                             f"key{'s' if len(moved) > 1 else ''}")
    if unknown:
        known = sorted(k for k in set(actions) - {"help", "config"} if not k.startswith("_"))
        raise SelectgymError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    parser.set_defaults(**{k: _yaml_value(actions[k], k, v, path) for k, v in values.items()})


def _kind(action: argparse.Action) -> str:
    """What a flag takes, in words, for an error message."""
    if isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "true or false"
    names = {int: "a whole number", float: "a number", str: "a word or path",
             parse_budget: "a share like 0.05 or a count", _mapping: "a mapping like {lr: 1.0}",
             _seed: f"a seed from 0 to {MAX_SEED}", positive_int: "a whole number >= 1"}
    one = names.get(action.type, "a word or path" if action.type is None else getattr(action.type, "__name__", "?"))
    return f"a list of ({one})" if action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction) else one


def _yaml_value(action: argparse.Action, key: str, value: Any, path: str) -> Any:
    """A YAML value checked and converted as its flag would convert it; a wrong type is a one-line error.

    argparse converts string defaults only, so ``batch_size: 8.5`` or ``epochs: [1, 2]`` would otherwise reach
    the code as they are, and ``dim: big`` would be blamed on ``--dim`` after a usage block.
    """
    def bad() -> SelectgymError:
        return SelectgymError(f"{path}: {key}: expected {_kind(action)}, got {value!r}")

    if value is None:
        return None
    flag = isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreTrueAction, argparse._StoreFalseAction))
    if flag or action.type is _mapping:
        if not isinstance(value, bool if flag else dict):
            raise bad()
        return value
    many = action.nargs in ("+", "*") or isinstance(action, (argparse._AppendAction, argparse._ExtendAction))
    if isinstance(value, dict) or isinstance(value, list) and not (many and value):
        raise bad()
    out = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, (dict, list, bool)):
            raise bad()
        if action.type is int and isinstance(item, float) and item.is_integer():
            item = int(item)
        try:
            out.append(str(item) if action.type is None else action.type(str(item)))
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            raise bad() from None
        if action.choices is not None and out[-1] not in action.choices:
            raise SelectgymError(f"{path}: {key}: {out[-1]!r} is not one of {', '.join(map(str, action.choices))}")
    return out if many else out[0]
