"""What a command may write: never over one of its own inputs, never over a file or folder it did not make.

Every command that writes checks its outputs here before it loads a model or computes anything:

- an output that is, holds or lies under one of the command's inputs is refused outright (no flag allows it);
- an output file that exists is refused unless the user passes ``--overwrite``;
- an output folder that exists and is not empty is refused unless selectgym made it (it holds ``MARKER``, or the
  files the command itself leaves there, such as a benchmark's ``runs.json``), or the user passes
  ``--overwrite``. Even then a user's folder is never emptied: the command's files are written into it beside
  the user's (``utils.atomic_dir``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from selectgym.errors import SelectgymError
from selectgym.utils import MARKER, is_ours, mark_ours

Inputs = Mapping[str, "str | os.PathLike | None"]


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def check_not_input(out: str | os.PathLike, inputs: Inputs | None, flag: str = "--out",
                    replaced: bool = True) -> None:
    """Refuse an output that is one of the command's inputs (``{"--pool": path, ...}``), or, when the output is
    ``replaced`` as a whole (a file, an adapter folder), one that holds an input."""
    target = _resolved(out)
    for name, inp in (inputs or {}).items():
        if inp is None or str(inp) == "":
            continue
        source = _resolved(inp)
        if target == source or replaced and target in source.parents:
            what = "is" if target == source else "holds"
            raise SelectgymError(f"{flag} {out} {what} the input {name} {inp}; writing there would destroy it, so "
                                 f"choose another {'file' if Path(out).suffix else 'folder'} for {flag}")


def claim_file(path: str | os.PathLike, inputs: Inputs | None = None, overwrite: bool = False,
               flag: str = "--out") -> Path:
    """Check that the command may write the file ``path``; returns it."""
    path = Path(path)
    check_not_input(path, inputs, flag)
    if path.is_dir():
        raise SelectgymError(f"{flag} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise SelectgymError(f"{flag} {path} already exists; choose a new name, or pass --overwrite to replace it")
    return path


def _first_entries(path: Path, n: int = 3) -> str:
    names = sorted(p.name for p in path.iterdir() if p.name != MARKER)
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(repr(x) for x in names[:n]) + more


def claim_folder(path: str | os.PathLike, inputs: Inputs | None = None, overwrite: bool = False, flag: str = "--out",
                 made_by: str = "selectgym", own_files: Iterable[str] = (), subfolders: Iterable[str] = ()) -> Path:
    """Check that the command may write into the folder ``path``, and mark it as selectgym's when it makes it.

    The folder itself may hold inputs (it is written into, never emptied), but it may not be one. ``own_files``
    are files the command leaves in its folder (a folder holding one is the command's, from an earlier run);
    ``subfolders`` are folders under ``path`` that the command replaces as a whole (an adapter, a merged model):
    they may not hold an input, and each passes the same check.
    """
    path = Path(path)
    check_not_input(path, inputs, flag, replaced=False)
    for sub in subfolders:
        check_not_input(path / sub, inputs, f"{flag} (its {sub}/)")
        _check_folder(path / sub, overwrite, f"{flag} (its {sub}/)", ())
    if _check_folder(path, overwrite, flag, own_files):
        path.mkdir(parents=True, exist_ok=True)
        mark_ours(path, made_by)
    return path


def _check_folder(path: Path, overwrite: bool, flag: str, own_files: Iterable[str]) -> bool:
    """Raise unless the command may write into ``path``; True when the folder is (or will be) selectgym's."""
    if path.exists() and not path.is_dir():
        raise SelectgymError(f"{flag} {path} is a file; give a folder")
    if not path.exists() or not any(path.iterdir()) or is_ours(path):
        return True
    if any((path / name).exists() for name in own_files):
        return True
    if not overwrite:
        raise SelectgymError(f"{flag} {path} is a folder selectgym did not make and it is not empty (it holds "
                             f"{_first_entries(path)}); choose a new or empty folder, or pass --overwrite to write "
                             "into it (files of the same names are replaced, the others are kept)")
    return False


@contextmanager
def claimed_folder(path: str | os.PathLike, *args, **kwargs) -> Iterator[Path]:
    """``claim_folder`` for the length of a block: a folder it made is removed again if the block fails before
    writing anything into it (a refused input then leaves no trace)."""
    path = Path(path)
    new = not path.exists()
    claim_folder(path, *args, **kwargs)
    try:
        yield path
    except BaseException:
        if new and path.is_dir() and [p.name for p in path.iterdir()] == [MARKER]:
            shutil.rmtree(path, ignore_errors=True)
        raise
