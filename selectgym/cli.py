"""The ``selectgym`` console script: one entry point, one module per subcommand.

Settings come from, in order: the subcommand's defaults, a YAML file given with ``--config``, then
flags on the command line. A YAML key that no flag knows is an error.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

from selectgym import __version__
from selectgym.commands.options import apply_config
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


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: a bad flag value is a ``SelectgymError`` (exit 2) naming the flag, not a
    usage block of every flag before it (``--help`` still prints them all). Subcommand parsers inherit it."""

    def error(self, message: str):
        raise SelectgymError(f"{message}; see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="selectgym", description="Pick the training data worth training an LLM on.")
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
    verbose = bool({"-v", "--verbose"} & set(argv))
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        verbose = args.verbose
        logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        if not verbose:
            quiet_third_party()
        if not getattr(args, "_run", None):
            parser.print_help()
            return 0
        sub, sub_argv = _subparser(parser, argv)
        if getattr(args, "config", None):
            args = apply_config(sub, sub.parse_args(sub_argv), sub_argv)
            args.verbose = verbose
        return int(args._run(args) or 0)
    except SelectgymError as err:
        _report(verbose, f"selectgym: error: {_one_line(err)}")
        return 2
    except OSError as err:
        _report(verbose, f"selectgym: error: {_one_line(_os_error(err))}")
        return 2
    except KeyboardInterrupt:
        print("selectgym: interrupted; finished work is kept on disk", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: still one line, the traceback behind -v
        _report(verbose, f"selectgym: internal error: {type(err).__name__}: {_one_line(err)[:500]} (rerun with -v "
                         "for the traceback and report it)")
        return 1


def _report(verbose: bool, line: str) -> None:
    if verbose:
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
