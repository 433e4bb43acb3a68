"""Workload ``vec_heavy``: ``amap_chunks`` of a heavier numpy function, compute over transport.

Runs in the bench's main thread; :func:`vec_heavy` runs in the workers.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from ..rows import Result, Workload, at_least, count
from ..runner import Bench
from ..sizes import Sizes
from .vec import array_map

__all__ = ["run", "vec_heavy", "workload"]

FloatArray = npt.NDArray[np.float64]


def vec_heavy(x: FloatArray, rounds: int = 20) -> FloatArray:
    """``y = sin(y) + cos(y)``, ``rounds`` times from ``y = x``: a heavier numpy function."""
    y = x
    for _ in range(rounds):
        y = np.sin(y) + np.cos(y)
    return y


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``vec_heavy`` at these sizes."""
    return Workload(
        "vec_heavy",
        f"amap_chunks(vec_heavy, {count(sizes.heavy_len)} float64)",
        f"{sizes.heavy_rounds} rounds of y = sin(y) + cos(y) over"
        f" {sizes.heavy_len * 8 / 1e6:.0f} MB",
        "≥ ×1.8 [×1.9]",
        at_least(1.8),
    )


def run(bench: Bench) -> list[Result]:
    """``amap_chunks(vec_heavy, data)`` against ``vec_heavy(data)``."""
    func = functools.partial(vec_heavy, rounds=bench.sizes.heavy_rounds)
    return array_map(bench, "vec_heavy", func, bench.sizes.heavy_len)
