"""How busy the CPU was around a benchmark, so its results file says how far to trust absolute figures."""

from __future__ import annotations

import os


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def load_note(before: list[float], after: list[float]) -> str:
    """One sentence for a results file. The load after includes the benchmark's own threads, so the
    verdict reads the 1-minute load before the run; it lags, so a job that just ended still counts."""
    cores = os.cpu_count() or 1
    verdict = ("the CPU was already busy when the run began (another job, or one that had just ended), so "
               "absolute figures may be low; ratios compare methods within the same run"
               if before[0] > 0.5 * cores else "the CPU was otherwise idle when the run began")
    return (f"Load average (1/5/15 min) before/after: {before} / {after} on {cores} cores, the after figure "
            f"including the benchmark's own threads: {verdict}.")
