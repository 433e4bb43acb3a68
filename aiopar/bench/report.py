"""The bench's verdicts and outputs: speedups and bars, the table, Markdown and JSON.

Pure functions of the rows (plus, for :func:`machine`, a look at this machine), run in
the bench's main thread after the measurements.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import aiopar

from .rows import Result, Workload

__all__ = [
    "AIOPAR_ROWS",
    "COLUMNS",
    "CORE_ROWS",
    "QUICK_BAR",
    "format_markdown",
    "format_table",
    "judge",
    "machine",
    "to_json",
]

AIOPAR_ROWS = ("aiopar", "aiopar submit")
"""The rows the bar applies to."""

CORE_ROWS = ("sequential", *AIOPAR_ROWS, "run_in_executor")
"""Rows that must run: a failure in one of them makes the command exit with status 1."""

QUICK_BAR = "n/a (quick sizes)"
"""The bar cell of aiopar rows under ``--quick``: the bars hold for the full sizes only."""

COLUMNS = ("workload", "contender", "median s", "speedup", "peak +MiB", "bar", "met?", "notes")
_NUMERIC = frozenset({"median s", "speedup", "peak +MiB"})


def judge(workload: Workload, rows: list[Result], *, quick: bool = False) -> None:
    """Fill in each row's speedup and, on aiopar rows, whether the bar is met.

    With ``quick`` (the sizes of ``--quick``) no bar is judged: the bars are set for the
    full sizes, and ``met`` stays None.

    The speedup is the median over rounds of t_seq / t_x, both timed in the same round:
    pairing the runs that ran a moment apart cancels the slow drifts of a shared
    machine (CPU clock, neighbours), which a ratio of medians taken over the whole run
    would keep. Without equal rounds (a contender failed midway, or runs timed back to
    back, as loop_lag's) it is the ratio of the medians.
    """
    sequential = next((r for r in rows if r.contender == "sequential"), None)
    for row in rows:
        median = row.median_s
        if sequential is not None and sequential.median_s is not None and median:
            pairs = list(zip(sequential.runs_s, row.runs_s, strict=False))
            if (
                sequential.in_rounds
                and row.in_rounds
                and len(pairs) == len(sequential.runs_s) == len(row.runs_s)
                and all(t > 0 for _, t in pairs)
            ):
                row.speedup = statistics.median(seq / t for seq, t in pairs)
            else:
                row.speedup = sequential.median_s / median
        if row.contender in AIOPAR_ROWS and not quick:
            row.met = row.status == "ok" and workload.meets(row)


def _ratio(value: float) -> str:
    return f"×{value:.2f}" if value >= 0.095 else f"×{value:.2g}"


def _cells(workload: Workload, row: Result, first: bool) -> list[str]:
    median, peak = row.median_s, row.peak_mib
    notes = row.note if row.status == "ok" else ": ".join(filter(None, (row.status, row.note)))
    is_aiopar = row.contender in AIOPAR_ROWS
    judged = is_aiopar and row.met is not None  # None: --quick, whose sizes have no bar
    return [
        workload.title if first else "",
        row.contender,
        f"{median:.3f}" if median is not None else "—",
        _ratio(row.speedup) if row.speedup is not None else "—",
        f"{peak:.0f}" if peak is not None else "—",
        (workload.bar if judged else QUICK_BAR) if is_aiopar else "",
        ("yes" if row.met else "no") if judged else "",
        notes,
    ]


def format_table(results: Sequence[tuple[Workload, list[Result]]]) -> str:
    """The results as one aligned plain-text table."""
    lines = [list(COLUMNS)]
    for workload, rows in results:
        lines.extend(_cells(workload, row, index == 0) for index, row in enumerate(rows))
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]
    out = []
    for number, line in enumerate(lines):
        cells = [
            cell.rjust(width) if COLUMNS[i] in _NUMERIC else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=False))
        ]
        out.append("  ".join([*cells, line[-1]]).rstrip())
        if number == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)


def format_markdown(results: Sequence[tuple[Workload, list[Result]]], heading: str) -> str:
    """The results as a Markdown table, under a line that says where they were measured."""

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    align = ["---:" if column in _NUMERIC else "---" for column in COLUMNS]
    lines = [heading, "", row(COLUMNS), row(align)]
    for workload, rows in results:
        lines.extend(row(_cells(workload, r, i == 0)) for i, r in enumerate(rows))
    return "\n".join(lines) + "\n"


def _source_fingerprint() -> str:
    """A short hash of aiopar's own ``*.py`` files (the bench package is a folder, not
    among them): which code a table measured."""
    digest = hashlib.sha256()
    package = os.path.dirname(os.path.abspath(aiopar.__file__))
    for name in sorted(os.listdir(package)):
        if name.endswith(".py"):
            with open(os.path.join(package, name), "rb") as file:
                digest.update(name.encode() + b"\0" + file.read() + b"\0")
    return digest.hexdigest()[:12]


def machine(workers: int) -> dict[str, Any]:
    """This machine, the versions and the source hash, for the heading and the JSON."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = float("nan")
    try:
        version = importlib.import_module("importlib.metadata").version("aiopar")
    except Exception:
        version = "unknown"
    return {
        "cpus": os.cpu_count(),
        "workers": workers,
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "aiopar": version,
        "aiopar_source": _source_fingerprint(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
    }


def to_json(
    results: Sequence[tuple[Workload, list[Result]]],
    *,
    machine: dict[str, Any],
    options: dict[str, Any],
    memory_method: str,
    seconds: float,
) -> dict[str, Any]:
    """The results as a JSON-ready dict; workloads keyed by name."""
    workloads = {}
    for workload, rows in results:
        main_row = next((r for r in rows if r.contender == "aiopar"), None)
        workloads[workload.name] = {
            "title": workload.title,
            "description": workload.description,
            "bar": workload.bar,
            "met": main_row.met if main_row else None,
            "rows": [
                {
                    "contender": r.contender,
                    "status": r.status,
                    "median_s": r.median_s,
                    "runs_s": r.runs_s,
                    "speedup": r.speedup,
                    "peak_mib": r.peak_mib,
                    "lag_ms": r.lag_ms,
                    "met": r.met,
                    "note": r.note,
                    "figures": r.figures,
                }
                for r in rows
            ],
        }
    return {
        "machine": machine,
        "options": options,
        "memory": memory_method,
        "speedup": "median over rounds of t_sequential / t_contender, timed in the same round",
        "seconds": seconds,
        "workloads": workloads,
    }
