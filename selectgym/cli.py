"""The ``selectgym`` console script: one entry point, one module per subcommand.

Settings come from, in order: the subcommand's defaults, a YAML file given with ``--config``, then
flags on the command line. A YAML key that no flag knows is an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import sys
import typing
from collections.abc import Sequence
from typing import Any

import yaml

from selectgym import __version__
from selectgym.errors import SelectgymError

#: subcommand name -> module under ``selectgym.commands`` defining ``add_arguments(parser)`` and ``run(args)``.
COMMANDS = {
    "pool": "pool",
    "features": "features",
    "select": "select",
    "train-agent": "train_agent",
    "finetune": "finetune",
    "bench": "bench",
    "demo": "demo",
    "model": "model",
}


def _available() -> dict[str, object]:
    mods = {}
    for name, mod in COMMANDS.items():
        spec = importlib.util.find_spec(f"selectgym.commands.{mod}")
        if spec is not None:
            mods[name] = importlib.import_module(f"selectgym.commands.{mod}")
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selectgym", description="Pick the training data worth training an LLM on.")
    parser.add_argument("--version", action="version", version=f"selectgym {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _available().items():
        doc = (mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else ""
        p = sub.add_parser(name, help=doc, description=mod.__doc__,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """Give a (sub)command a ``--config FILE`` whose YAML keys become defaults for its flags."""
    parser.add_argument("--config", default=None, help="YAML file of settings; flags override it")


def number(text: str) -> int | float:
    """A budget on the command line: ``40`` is a count, ``0.05`` a share."""
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _mapping(text: str) -> dict[str, Any]:
    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping like '{{lr: 1.0}}', got {text!r}")
    return value


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> list[str]:
    """One flag per field of a config dataclass (help from the field's metadata); returns the field names.

    Lists take several values (``--seeds 0 1 2``), dicts take YAML (``--reward-kwargs '{lr: 1}'``), booleans
    get ``--x/--no-x``; a field named ``budget`` accepts a count or a share.
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
        if typing.get_origin(kind) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
            kind = args[0]
        origin = typing.get_origin(kind)
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.name == "budget":
            kwargs["type"] = number
        elif origin is dict:
            kwargs["type"] = _mapping
        elif origin is list:
            kwargs.update(type=typing.get_args(kind)[0], nargs="+")
        else:
            kwargs["type"] = kind
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
    try:
        with open(path, encoding="utf-8") as fh:
            values = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise SelectgymError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise SelectgymError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise SelectgymError(f"{path}: a config file must be a mapping of setting: value")
    known = {a.dest for a in parser._actions}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SelectgymError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known - {'help', 'config', '_run'}))}")
    parser.set_defaults(**values)
    return parser.parse_args(argv)


def _subparser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The innermost subparser named in ``argv`` and the arguments it sees."""
    current, rest = parser, list(argv)
    while True:
        subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return current, rest
        idx = next((i for i, tok in enumerate(rest) if tok in subs[0].choices), None)
        if idx is None:
            return current, rest
        current, rest = subs[0].choices[rest[idx]], rest[idx + 1:]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 for a user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        sub, sub_argv = _subparser(parser, argv)
        if getattr(args, "config", None):
            args = apply_config(sub, sub.parse_args(sub_argv), sub_argv)
            args.verbose = getattr(args, "verbose", False)
        return int(args._run(args) or 0)
    except SelectgymError as err:
        print(f"selectgym: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("selectgym: interrupted; finished work is kept on disk", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
