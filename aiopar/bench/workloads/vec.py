"""Workload ``vec``: ``amap_chunks`` of a cheap numpy function over 160 MB.

The function is cheap, so this measures the transport of the array out and back. Also
holds :func:`array_map`, the measurement shared with ``vec_heavy``. Runs in the bench's
main thread (see :mod:`aiopar.bench.runner`); :func:`vec` runs in the workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..rows import Result, Sample, Workload, at_least, count
from ..runner import Bench, Entry, close_enough
from ..sizes import Sizes

__all__ = ["array_map", "run", "vec", "workload"]

FloatArray = npt.NDArray[np.float64]


def vec(x: FloatArray) -> FloatArray:
    """``sqrt(|x|) * sin(x) + cos(x)**2``, elementwise: a cheap numpy function."""
    return np.sqrt(np.abs(x)) * np.sin(x) + np.square(np.cos(x))


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``vec`` at these sizes."""
    mb = sizes.vec_len * 8 / 1e6
    return Workload(
        "vec",
        f"amap_chunks(vec, {count(sizes.vec_len)} float64)",
        f"vec(x) = sqrt(|x|)*sin(x) + cos(x)**2 over {mb:.0f} MB; aiopar cuts its default"
        " pieces (16 MiB at most), the others one piece per worker",
        "≥ ×1.5 [×1.7]",
        at_least(1.5),
    )


def array_map(
    bench: Bench, workload: str, func: Callable[[FloatArray], FloatArray], length: int
) -> list[Result]:
    """``amap_chunks(func, data)`` against ``func(data)``, one piece per worker by hand,
    and the other libraries given one piece per worker."""
    data = bench.array(length)
    entries: list[Entry] = [
        ("sequential", bench.blocking(lambda: func(data))),
        ("aiopar", bench.awaiting(lambda: bench.pool.amap_chunks(func, data))),
        ("run_in_executor", bench.awaiting(lambda: bench.by_hand(func, data))),
    ]

    def use(session: Any) -> Callable[[], Sample]:
        pieces = np.array_split(data, bench.workers)
        return bench.blocking(lambda: np.concatenate(session.map(func, pieces)))

    rows = bench.measure(workload, entries, close_enough)
    return rows + bench.others(workload, use, close_enough)


def run(bench: Bench) -> list[Result]:
    """``amap_chunks(vec, data)`` against ``vec(data)``."""
    return array_map(bench, "vec", vec, bench.sizes.vec_len)
