"""What one benchmark run produces: a :class:`Sample` per run, a :class:`Result` per row.

Plain data, shared by the runner (which fills them), the workloads (which describe
themselves as a :class:`Workload`) and the report (which prints them).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Result", "Sample", "Workload", "at_least", "count"]


@dataclass
class Sample:
    """One run of a contender: seconds, its answer, and what else was measured."""

    seconds: float
    value: Any
    lags: list[float] | None = None
    peak_mib: float | None = None  # set by runs that measure memory themselves
    note: str = ""


@dataclass
class Result:
    """One row of the table: one contender on one workload."""

    workload: str
    contender: str
    status: str = "ok"  # "ok", "not installed", "failed", "wrong result"
    runs_s: list[float] = field(default_factory=list)
    peak_mib: float | None = None
    lag_ms: dict[str, float] | None = None
    note: str = ""
    speedup: float | None = None
    met: bool | None = None
    in_rounds: bool = True  # runs_s[i] was timed in round i, beside the other rows' i-th
    # Figures a workload derives from its runs (µs per task, tasks/s, ratios to another
    # row), by name; in the JSON output, and what some bars read.
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def median_s(self) -> float | None:
        """Median of the timed runs, or None when the contender did not run."""
        return statistics.median(self.runs_s) if self.runs_s else None


@dataclass(frozen=True)
class Workload:
    """A workload's title, what it means, and the bar aiopar has to meet."""

    name: str
    title: str
    description: str
    bar: str
    meets: Callable[[Result], bool]


def at_least(ratio: float) -> Callable[[Result], bool]:
    """The bar "speedup of at least ``ratio``"."""
    return lambda r: r.speedup is not None and r.speedup >= ratio


def count(n: int) -> str:
    """``20M``, ``200k``: a size for a title."""
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"
