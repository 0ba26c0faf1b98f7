"""The ``selectgym`` console script: one entry point, one module per subcommand.

Settings come from, in order: the subcommand's defaults, a YAML file given with ``--config``, then
flags on the command line. A YAML key that no flag knows is an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import logging
import sys
import traceback
import typing
from collections.abc import Sequence
from typing import Any

import yaml

from selectgym import __version__
from selectgym.budget import parse_budget
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
        # argparse %-formats help texts: a literal '%' (as in '5%') must be doubled
        p = sub.add_parser(name, help=doc.replace("%", "%%"), description=mod.__doc__,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """Give a (sub)command a ``--config FILE`` whose YAML keys become defaults for its flags."""
    parser.add_argument("--config", default=None, help="YAML file of settings; flags override it")


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
            kwargs["type"] = parse_budget
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
    actions = {a.dest: a for a in parser._actions}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise SelectgymError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(set(actions) - {'help', 'config', '_run'}))}")
    parser.set_defaults(**{k: _yaml_value(actions[k], k, v, path) for k, v in values.items()})
    return parser.parse_args(argv)


def _kind(action: argparse.Action) -> str:
    """What a flag takes, in words, for an error message."""
    if isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "true or false"
    names = {int: "a whole number", float: "a number", str: "a word or path",
             parse_budget: "a share like 0.05 or a count", _mapping: "a mapping like {lr: 1.0}"}
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
    many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)
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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _os_error(err: OSError) -> str:
    """What went wrong with a file or folder, and what to do about it."""
    where = f" {err.filename}" if err.filename else ""
    reason = err.strerror or type(err).__name__
    hint = {errno.EACCES: "choose a path you may write to, or change its permissions",
            errno.EROFS: "the file system is read-only; choose another path",
            errno.ENOSPC: "the disk is full; free space or choose another path",
            errno.ENOENT: "check the path",
            errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
            errno.EISDIR: "the path is a folder; give a file name",
            errno.EEXIST: "a file stands where a folder is needed; check the path"}.get(err.errno, "check the path")
    return f"{reason}:{where}; {hint}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 for a user error, 1 for an internal error).

    Every error is one line on stderr; ``-v`` adds the traceback (for bug reports).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        quiet_third_party()
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        sub, sub_argv = _subparser(parser, argv)
        if getattr(args, "config", None):
            verbose = args.verbose
            args = apply_config(sub, sub.parse_args(sub_argv), sub_argv)
            args.verbose = verbose
        return int(args._run(args) or 0)
    except SelectgymError as err:
        _report(args, f"selectgym: error: {_one_line(err)}")
        return 2
    except OSError as err:
        _report(args, f"selectgym: error: {_one_line(_os_error(err))}")
        return 2
    except KeyboardInterrupt:
        print("selectgym: interrupted; finished work is kept on disk", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: still one line, the traceback behind -v
        _report(args, f"selectgym: internal error: {type(err).__name__}: {_one_line(err)[:500]} (rerun with -v for "
                      "the traceback and report it)")
        return 1


def _report(args: argparse.Namespace, line: str) -> None:
    if getattr(args, "verbose", False):
        traceback.print_exc()
    print(line, file=sys.stderr)


def quiet_third_party() -> None:
    """No INFO walls, deprecation warnings or third-party progress bars unless ``-v`` asks for them."""
    import os
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(torch|transformers|peft|trl|accelerate)\b.*")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "datasets", "peft", "trl", "accelerate", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # libraries imported already read those variables at import: switch their bars off directly
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
