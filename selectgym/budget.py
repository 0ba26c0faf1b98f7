"""The selection budget, one rule for every layer: a share of the pool in (0, 1) or a whole count >= 1.

``parse_budget`` reads what a user typed (flag or YAML), ``check_budget`` validates it before the pool size
is known (configs), and ``resolve_budget`` turns it into a count for a pool of ``n``. ``1.0`` is refused
everywhere: it could mean one example or the whole pool.
"""

from __future__ import annotations

import math
from typing import Any

from selectgym.errors import SelectgymError

#: the share of the pool a user gets when they give no budget (LESS's and NICE's published 5%)
DEFAULT_SHARE = 0.05


def parse_budget(value: Any) -> float | int | None:
    """``"0.05"`` -> 0.05, ``"40"`` -> 40, a number stays a number, None stays None (then a default applies)."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    text = str(value).strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    raise SelectgymError(f"--budget must be a share like 0.05 or a count like 100, got {value!r}")


def check_budget(budget: Any) -> float | int:
    """The budget itself, or a one-line error if it is neither a share in (0, 1) nor a whole count >= 1."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or math.isnan(budget):
        raise SelectgymError(f"budget must be a share in (0, 1) or a count >= 1, got {budget!r}")
    if isinstance(budget, float) and budget == 1.0:
        raise SelectgymError("budget 1.0 is ambiguous (one example, or the whole pool?); write 1 for one example, "
                             "or the pool size to take the whole pool")
    if isinstance(budget, float) and 0 < budget < 1 or budget >= 1 and float(budget).is_integer():
        return budget
    raise SelectgymError(f"budget must be a share in (0, 1) or a whole count >= 1, got {budget!r}")


def resolve_budget(budget: float | int, n: int) -> int:
    """A budget as a count for a pool of ``n``: a share is rounded (at least 1), a count is checked against ``n``."""
    if n <= 0:
        raise SelectgymError("the pool is empty; there is nothing to select from")
    budget = check_budget(budget)
    if isinstance(budget, float) and budget < 1:
        return max(1, round(budget * n))
    k = int(budget)
    if k > n:
        raise SelectgymError(f"budget {k} is above the pool size {n}; use at most {n} or a share like 0.05")
    return k


def is_count(budget: float | int) -> bool:
    """True for a budget that is a count of examples (>= 1), False for a share of the pool."""
    return budget >= 1


def budget_label(budget: float | int) -> str:
    """``0.05`` -> ``'5%'``, ``0.125`` -> ``'12.5%'``, ``2`` -> ``'2 examples'``: how a table names a budget."""
    if is_count(budget):
        n = int(budget)
        return f"{n} example{'s' if n != 1 else ''}"
    text = f"{100 * budget:.4g}"
    return f"{text}%"


def budget_order(budget: float | int) -> tuple[int, float]:
    """Sort key: shares first, smallest first, then counts."""
    return (1 if is_count(budget) else 0, float(budget))
