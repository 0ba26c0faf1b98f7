"""Degenerate data, named at the step that can see it: one function, ``degenerate_report``, gives warning lines.

What it counts: preference pairs whose chosen and rejected replies are the same text (DPO's loss stays at
ln 2 on them and their reward gap is 0, so ``dpo_gap`` ranks them among the hardest pairs); examples whose
response, chosen or rejected reply, or answer is empty or only whitespace; validation rows that repeat an
earlier row; and a validation set that is the pool itself, or shares prompts with it. These are warnings,
not errors: the data may be meant that way. Library code logs the lines (``log_report``); commands print them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence

from selectgym.data.pool import Example, Pool

log = logging.getLogger(__name__)


def _first(ids: Sequence[str], n: int = 3) -> str:
    return ", ".join(ids[:n]) + (", ..." if len(ids) > n else "")


def _name(pool: Pool) -> str:
    return str(pool.source)


def identical_pairs(examples: Iterable[Example]) -> list[str]:
    """Ids of the preference pairs whose chosen and rejected replies are the same text (ends' spaces ignored)."""
    return [ex.id for ex in examples
            if ex.chosen is not None and ex.rejected is not None and ex.chosen.strip() == ex.rejected.strip()]


def empty_targets(examples: Iterable[Example]) -> dict[str, list[str]]:
    """``{field: ids}`` of the examples whose response, chosen, rejected or answer is empty or whitespace."""
    out: dict[str, list[str]] = {}
    for ex in examples:
        for name in ("response", "chosen", "rejected", "answer"):
            value = getattr(ex, name)
            if value is not None and not value.strip():
                out.setdefault(name, []).append(ex.id)
    return out


def _content_key(ex: Example) -> str:
    return json.dumps(ex.content(), sort_keys=True, ensure_ascii=False)


def _prompt_key(ex: Example) -> str:
    return json.dumps(ex.prompt, sort_keys=True, ensure_ascii=False)


def duplicate_rows(examples: Iterable[Example]) -> list[str]:
    """Ids of the rows whose content (prompt and targets, not the id) repeats an earlier row's."""
    seen: set[str] = set()
    dups = []
    for ex in examples:
        key = _content_key(ex)
        if key in seen:
            dups.append(ex.id)
        seen.add(key)
    return dups


def pair_warning(examples: Sequence[Example], where: str, of: str = "preference pairs") -> str | None:
    """'<where>: 8 of 12 preference pairs have chosen == rejected (...)', or None when there are none."""
    same = identical_pairs(examples)
    if not same:
        return None
    total = sum(ex.chosen is not None for ex in examples)
    return (f"{where}: {len(same)} of {total} {of} have chosen == rejected (first: {_first(same)}); DPO learns "
            f"nothing from them (its loss stays at ln 2) and their reward gap is 0; drop or fix them")


def _empty_lines(examples: Sequence[Example], where: str) -> list[str]:
    lines = []
    for name, ids in empty_targets(examples).items():
        lines.append(f"{where}: {len(ids)} of {len(examples)} examples have an empty or whitespace-only {name} "
                     f"(first: {_first(ids)})")
    return lines


def degenerate_report(pool: Pool, val: Pool | None = None, *, pool_duplicates: bool = False) -> list[str]:
    """Warning lines (empty when nothing is wrong) about degenerate data in ``pool`` and its validation set.

    ``pool``: chosen == rejected pairs, empty or whitespace-only responses/replies/answers, and with
    ``pool_duplicates`` rows that repeat an earlier row (off by default: a training pool may hold duplicates
    on purpose, as the built-in suite does). ``val``: the same empty checks, repeated rows, and whether it is
    the pool itself (same ids, or the same rows) or shares prompts with it.
    """
    where = _name(pool)
    lines = [line for line in [pair_warning(list(pool), where)] if line]
    lines += _empty_lines(list(pool), where)
    if pool_duplicates:
        dups = duplicate_rows(pool)
        if dups:
            lines.append(f"{where}: {len(dups)} of {len(pool)} rows repeat an earlier row (first: {_first(dups)})")
    if val is None:
        return lines
    vwhere = f"validation {_name(val)}"
    lines += _empty_lines(list(val), vwhere)
    dups = duplicate_rows(val)
    if dups:
        lines.append(f"{vwhere}: {len(dups)} of {len(val)} rows repeat an earlier row (first: {_first(dups)}); each "
                     f"copy weighs again in validation gradients and scores; drop the copies")
    # rows are only serialised when the sizes match: a pool of 10^6 rows is never the 400-row target
    same_rows = len(pool) == len(val) and sorted(map(_content_key, pool)) == sorted(map(_content_key, val))
    same_ids = len(pool) == len(val) and set(pool.ids) == set(val.ids)
    if same_rows or same_ids:
        lines.append(f"{vwhere} is the pool itself (the same {len(val)} {'rows' if same_rows else 'ids'}); a "
                     f"selection aligned with it only finds the pool in itself; pass a held-out validation set")
        return lines
    prompts = {_prompt_key(ex) for ex in pool}
    shared = [ex.id for ex in val if _prompt_key(ex) in prompts]
    if shared:
        lines.append(f"{vwhere}: {len(shared)} of {len(val)} examples have a prompt that is also in the pool "
                     f"(first: {_first(shared)}); scores on them measure memorising, not learning")
    return lines


def log_report(lines: Iterable[str]) -> list[str]:
    """Log each warning line (library code does not print); returns the lines."""
    lines = list(lines)
    for line in lines:
        log.warning("%s", line)
    return lines
