"""The demo's sizes and its table: the rows, how each is printed, and why one is slower.

Pure formatting and data, no event loop: used in the main thread by
:mod:`aiopar.demo.experiments` (which makes the rows) and :mod:`aiopar.demo.cli`
(which prints them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BUSY_SHARE",
    "QUICK",
    "QUICK_ENV",
    "ROW_NAMES",
    "SLEEP_POOL_WORKERS",
    "Row",
    "Sizes",
    "WHY_SLOWER",
    "format_row",
    "header",
    "load_line",
]

ROW_NAMES = (
    "sleep tasks (remote + gather)",
    "matrix task graph (submit)",
    "chain of adds (TaskRefs)",
    "tree of adds (tree_reduce)",
    "array chunks (amap_chunks)",
    "amap beside a 1 ms ticker",
)
"""The experiment column of the table, in the order the rows are printed."""

SLEEP_POOL_WORKERS = 4
"""Workers of the pool the sleep tasks and the adds run on (the CPU work uses the default pool)."""


@dataclass(frozen=True)
class Sizes:
    """How big each experiment is; the defaults are the full demo (27 s on 2 busy cores)."""

    sleep_tasks: int = 40
    sleep_s: float = 0.1
    matrix_size: int = 2000
    add_values: int = 8
    add_sleep_s: float = 0.25
    array_len: int = 100_000
    array_chunks: int = 15
    rounds: int = 450
    tick_s: float = 0.001


QUICK = Sizes(sleep_tasks=16, sleep_s=0.05, matrix_size=1500, add_sleep_s=0.05, rounds=100)
"""The sizes of ``--quick``: the whole demo in 6-7 s on 2 cores (measured).

Each row still shows what it is there for on 2 cores: the matrices stay big enough
(1500², about 0.2 s) that the trips of the matrices between processes do not hide the
graph, and the array's work per chunk (about 20 ms) is far above the cost of sending it.
"""

QUICK_ENV = "AIOPAR_DEMO_QUICK"
"""An environment variable that, set to anything but ``""`` or ``"0"``, means ``--quick``."""

BUSY_SHARE = 0.15
"""Other processes' share of the CPUs above which the demo says timings are disturbed."""

WHY_SLOWER = {
    ROW_NAMES[1]: "numpy already runs the multiply on every core, and the matrices travel"
    " between processes: the graph is shown for its dependencies, not for speed",
    ROW_NAMES[2]: "each add waits for the one before: a chain has nothing to run in"
    " parallel (the tree below does)",
}
"""Why a row is slower with aiopar by nature, printed beside it when it is."""


@dataclass(frozen=True)
class Row:
    """One finished experiment."""

    name: str
    sequential_s: float
    aiopar_s: float
    notes: str
    others: float | None = None
    """Share of the CPUs other processes used while aiopar ran (None: not measured)."""

    @property
    def speedup(self) -> float:
        """How many times faster aiopar was than the sequential version."""
        return self.sequential_s / self.aiopar_s if self.aiopar_s > 0 else float("inf")

    def why_slower(self) -> str:
        """Why aiopar was slower here, or ``""`` when it was not (as printed, to 2 places)."""
        if round(self.speedup, 2) >= 1.0:
            return ""
        if self.name in WHY_SLOWER:
            return WHY_SLOWER[self.name]
        if self.others is not None and self.others >= BUSY_SHARE:
            return f"other processes used {self.others:.0%} of the CPUs while aiopar ran"
        return (
            "at these sizes, starting the tasks and moving their data cost more than the"
            " work they share out"
        )


_NAME_WIDTH = max(len(name) for name in ROW_NAMES)


def header() -> str:
    return (
        f"{'experiment':<{_NAME_WIDTH}}  {'sequential s':>12}  {'aiopar s':>8}"
        f"  {'speedup':>8}  notes"
    )


def format_row(row: Row) -> str:
    why = row.why_slower()
    notes = f"{row.notes}; slower: {why}" if why else row.notes
    return (
        f"{row.name:<{_NAME_WIDTH}}  {row.sequential_s:>12.2f}  {row.aiopar_s:>8.2f}"
        f"  {row.speedup:>7.2f}x  {notes}"
    )


def load_line(others: float | None, cpus: int) -> str:
    """The line under the table about other processes, or ``""`` when they were quiet."""
    if others is None or others < BUSY_SHARE:
        return ""
    return (
        f"machine load: other processes used {others:.0%} of the {cpus} CPUs during the"
        " demo, so the timings above are disturbed; run it again on a quieter machine"
    )
