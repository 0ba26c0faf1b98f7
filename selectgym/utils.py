"""Small shared helpers: atomic writes, hashing, the cache folder."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir() -> Path:
    """Where converted models and tokenizers are cached (``$SELECTGYM_CACHE`` or ``~/.cache/selectgym``)."""
    from selectgym.errors import SelectgymError

    env = os.environ.get("SELECTGYM_CACHE")
    root = env or os.path.join(os.path.expanduser("~"), ".cache", "selectgym")
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if path.exists() and not path.is_dir():
            reason = "it is a file, not a folder"
        else:
            reason = f"{err.strerror or type(err).__name__}" + (f" ({err.filename})" if err.filename else "")
        where = f"SELECTGYM_CACHE={env}" if env else f"the cache folder {root}"
        fix = ("point SELECTGYM_CACHE at a folder you may write to, or unset it to use ~/.cache/selectgym" if env
               else "set SELECTGYM_CACHE to a folder you may write to")
        raise SelectgymError(f"{where} cannot hold the cache: {reason}; {fix}") from None
    return path


#: what a ``--device`` flag takes (``cuda:N`` too where a command runs on one chosen GPU)
DEVICE_KINDS = ("auto", "cpu", "cuda")


def check_device(name: str, choices: Iterable[str] = DEVICE_KINDS, gpu_index: bool = True,
                 available: bool = True) -> str:
    """A ``--device`` value checked before any model loads: one of ``choices`` (or ``cuda:N`` with ``gpu_index``)
    and, with ``available``, CUDA only where a CUDA GPU is visible. Returns ``name``."""
    from selectgym.errors import SelectgymError

    choices = tuple(choices)
    kind, sep, index = str(name).partition(":")
    indexed = bool(sep) and kind == "cuda" and gpu_index and index.isdigit()
    if name not in choices and not indexed:
        shown = ", ".join(choices) + (" (or cuda:N for one GPU)" if gpu_index and "cuda" in choices else "")
        raise SelectgymError(f"--device {name!r} is not a device selectgym runs on; use one of {shown}")
    if available and kind == "cuda":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise SelectgymError(f"--device {name}: no CUDA GPU is visible on this machine; use --device cpu (or auto)")
        if indexed and int(index) >= count:
            raise SelectgymError(f"--device {name}: only {count} CUDA GPU(s) are visible here; use cuda:0 to "
                                 f"cuda:{count - 1}, or auto")
    return name


def _umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    A killed process therefore never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would honour the umask
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: the file that marks a folder as written by selectgym: such a folder may be replaced or resumed; any other is the
#: user's, and nothing in it is ever deleted (``selectgym.outputs``)
MARKER = ".selectgym"


def is_ours(path: str | os.PathLike) -> bool:
    """True for a folder selectgym made (it holds ``MARKER``)."""
    return (Path(path) / MARKER).is_file()


def mark_ours(path: str | os.PathLike, made_by: str = "selectgym") -> None:
    """Mark a folder selectgym made, so a later run may replace or resume it."""
    marker = Path(path) / MARKER
    if not marker.exists():
        marker.write_text(json.dumps({"made_by": made_by}) + "\n", encoding="utf-8")


def _merge_into(src: Path, dst: Path) -> None:
    """Move ``src``'s entries into the folder ``dst``: same-named files are replaced, every other entry is kept."""
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge_into(entry, target)
        elif target.is_dir() and not target.is_symlink():
            raise FileExistsError(errno.EEXIST, "a folder stands where a file is to be written", str(target))
        else:
            os.replace(entry, target)


@contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it into place only if the block succeeds.

    With ``replace`` an existing ``path`` is swapped out when selectgym made it (it holds ``MARKER``, which every
    folder published here gets) or it is empty; a folder of the user's is never deleted: the new files are moved
    into it, replacing same-named files and keeping the rest. Without ``replace`` an existing ``path`` wins (a
    concurrent writer of the same cache got there first) and the new copy is dropped.
    """
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    old = None
    try:
        yield tmp
        mark_ours(tmp)
        if path.exists() and replace:
            if path.is_dir() and (is_ours(path) or not any(path.iterdir())):
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}-old-", dir=path.parent))
                os.replace(path, old / "x")
            elif path.is_dir():
                _merge_into(tmp, path)
            else:
                raise FileExistsError(errno.EEXIST, "a file stands where a folder is to be written", str(path))
        if not path.exists():
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> Path:
    """Write records as JSON lines, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write one JSON document, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    return Path(path)


def file_digest(path: str | os.PathLike, n: int = 16) -> str:
    """Hex digest of a file's bytes: tells a replaced file from the one a result was made with."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:n]


def stable_hash(obj: Any, n: int = 16) -> str:
    """Hex digest of the canonical JSON of ``obj``: same content, same hash, on any machine."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:n]


def derive_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed for one stage or shard, the same in every process and on every resume."""
    return int(stable_hash([seed, *parts], 8), 16) & 0x7FFFFFFF


def standardise(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over all of ``x``; a constant ``x`` gives zeros, so a flat column never divides by 0."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std()
    return (x - x.mean()) / std if std > 1e-12 else np.zeros_like(x)
