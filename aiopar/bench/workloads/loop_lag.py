"""Workload ``loop_lag``: how late a 1 ms ticker wakes while two big maps run.

Runs in the bench's main thread, the ticker on the bench's event loop beside the maps
(see :mod:`aiopar.bench.lag`); the sequential row blocks that loop on purpose.
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from ..rows import Result, Workload
from ..runner import Bench, Entry, close_enough
from ..sizes import Sizes
from .vec import vec

__all__ = ["run", "workload"]

FloatArray = npt.NDArray[np.float64]


def _lag_bar(r: Result) -> bool:
    return r.lag_ms is not None and r.lag_ms["p99"] <= 5.0 and r.lag_ms["max"] <= 25.0


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``loop_lag`` at these sizes."""
    mb = sizes.vec_len * 8 / 1e6
    return Workload(
        "loop_lag",
        f"1 ms ticker during 2 maps of {mb:.0f} MB",
        f"two amap_chunks(vec, {mb:.0f} MB) started together while a 1 ms ticker runs"
        " on the same loop; lag = how late each tick wakes (all timed runs pooled)",
        "p99 ≤ 5 ms, max ≤ 25 ms",
        _lag_bar,
    )


def run(bench: Bench) -> list[Result]:
    """Two maps at once beside a 1 ms ticker; the sequential row blocks the loop."""
    data = bench.array(bench.sizes.vec_len)

    async def in_loop() -> tuple[FloatArray, FloatArray]:
        return vec(data), vec(data)  # blocks the event loop: the ticker cannot run

    async def with_aiopar() -> list[FloatArray]:
        maps = (bench.pool.amap_chunks(vec, data), bench.pool.amap_chunks(vec, data))
        return list(await asyncio.gather(*maps))

    async def by_hand() -> list[FloatArray]:
        return list(await asyncio.gather(bench.by_hand(vec, data), bench.by_hand(vec, data)))

    entries: list[Entry] = [
        ("sequential", bench.awaiting(in_loop, ticker=True)),
        ("aiopar", bench.awaiting(with_aiopar, ticker=True)),
        ("run_in_executor", bench.awaiting(by_hand, ticker=True)),
    ]
    return bench.measure("loop_lag", entries, close_enough, grouped=True)
