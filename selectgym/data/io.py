"""Read pools from JSONL, JSON and parquet files; every error names the file and the line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from selectgym.data.formats import FORMATS, RecordError, detect_format, normalise
from selectgym.data.pool import Example, Pool, assign_ids
from selectgym.errors import SelectgymError
from selectgym.utils import write_jsonl

SUFFIXES = (".jsonl", ".json", ".parquet")


def read_records(path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    """Return ``(line_or_row_number, record)`` pairs; raise ``SelectgymError`` on anything malformed."""
    path = Path(path)
    if not path.exists():
        raise SelectgymError(f"{path}: no such file")
    if path.is_dir():
        raise SelectgymError(f"{path} is a folder; give a pool file (.jsonl, .json or .parquet)")
    try:
        return _read_records(path)
    except UnicodeDecodeError as err:
        raise SelectgymError(f"{path}: byte {err.start} is not UTF-8 text; is it a binary file? A pool is a UTF-8 "
                             f"JSONL or JSON file, or a parquet file") from None
    except PermissionError:
        raise SelectgymError(f"{path}: permission denied; make the file readable") from None


def _read_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        out = []
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    out.append((n, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise SelectgymError(f"{path}:{n}: not valid JSON ({err.msg} at column {err.colno})") from None
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise SelectgymError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise SelectgymError(f"{path}: a JSON pool must be a list of records (or {{'data': [...]}})")
        out = [(i + 1, rec) for i, rec in enumerate(data)]
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow raises several types for a corrupt file
            raise SelectgymError(f"{path}: not a readable parquet file ({err})") from None
        out = [(i + 1, rec) for i, rec in enumerate(rows)]
    else:
        raise SelectgymError(f"{path}: unknown file type {suffix!r}; use one of {', '.join(SUFFIXES)}")
    if not out:
        raise SelectgymError(f"{path}: the file holds no records; a pool needs at least one example")
    return out


def load_pool(path: str | os.PathLike, format: str = "auto") -> Pool:
    """Load and normalise a pool. ``format="auto"`` detects it from the first record."""
    records = read_records(path)
    if format != "auto" and format not in FORMATS:
        raise SelectgymError(f"unknown format {format!r}; choose auto or one of {', '.join(FORMATS)}")
    examples: list[Example] = []
    fmt = format
    for n, rec in records:
        try:
            if fmt == "auto":
                fmt = detect_format(rec)
            elif not isinstance(rec, dict):
                raise RecordError(f"expected a JSON object, got {type(rec).__name__}")
            examples.append(normalise(rec, fmt))
        except RecordError as err:
            where = "line" if Path(path).suffix == ".jsonl" else "record"
            raise SelectgymError(f"{path}:{n}: {err} ({fmt} format, {where} {n})") from None
    return Pool(tuple(assign_ids(examples)), fmt, str(path))


def to_record(example: Example) -> dict[str, Any]:
    """The example in its pool's own format, with its id and meta attached."""
    rec = dict(example.raw) if example.raw else _default_record(example)
    rec["id"] = example.id
    if example.meta:
        rec["meta"] = example.meta
    return rec


def _default_record(ex: Example) -> dict[str, Any]:
    if ex.kind == "preference":
        return {"prompt": ex.prompt, "chosen": ex.chosen, "rejected": ex.rejected}
    if ex.kind == "verifiable":
        return {"prompt": ex.prompt, "answer": ex.answer}
    return {"messages": [*ex.prompt, {"role": "assistant", "content": ex.response}]}


def save_pool(path: str | os.PathLike, examples: Iterable[Example]) -> Path:
    """Write examples as JSONL in their own format (atomically)."""
    return write_jsonl(path, (to_record(ex) for ex in examples))
