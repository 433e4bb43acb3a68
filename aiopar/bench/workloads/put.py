"""Workload ``put``: one big array read by many tasks, placed once with ``Pool.put``.

Runs in the bench's main thread; :func:`array_sum` and :func:`array_sums` run in the
workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..rows import Result, Workload, at_least
from ..runner import Bench, Entry, close_enough
from ..sizes import Sizes

__all__ = ["array_sum", "array_sums", "run", "workload"]

FloatArray = npt.NDArray[np.float64]


def array_sum(x: FloatArray, seed: int) -> float:
    """``x.sum() + seed``: one read of a big array, for the put workload."""
    return float(x.sum()) + seed


def array_sums(x: FloatArray, seeds: Sequence[int]) -> list[float]:
    """``[array_sum(x, seed) for seed in seeds]``: one hand-made chunk of put tasks."""
    return [array_sum(x, seed) for seed in seeds]


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``put`` at these sizes."""
    mb = sizes.put_len * 8 / 1e6
    return Workload(
        "put",
        f"one {mb:.0f} MB array to {sizes.put_tasks} tasks",
        f"{sizes.put_tasks} tasks array_sum(x, i) over one {mb:.0f} MB"
        " array x: aiopar puts x once, then submits (array_sum, ref, i);"
        " 'aiopar no put' submits x itself, copied for each task;"
        " run_in_executor sends x once per worker, with that worker's share of the tasks",
        "≥ ×1.0",
        at_least(1.0),
    )


def run(bench: Bench) -> list[Result]:
    """One big array to many tasks: placed once with ``put``, or sent with each task."""
    data = bench.array(bench.sizes.put_len)
    seeds = range(bench.sizes.put_tasks)
    pool = bench.pool

    async def with_put() -> list[float]:
        ref = pool.put(data)
        return await pool.gather(*(pool.submit(array_sum, ref, i) for i in seeds))

    async def without_put() -> list[float]:
        return await pool.gather(*(pool.submit(array_sum, data, i) for i in seeds))

    async def by_hand() -> list[float]:  # one call (one copy of x) per worker
        loop = asyncio.get_running_loop()
        w, n = bench.workers, len(seeds)
        pieces = [seeds[n * i // w : n * (i + 1) // w] for i in range(w)]
        answers = await asyncio.gather(
            *(loop.run_in_executor(bench.executor, array_sums, data, p) for p in pieces)
        )
        return [value for answer in answers for value in answer]

    entries: list[Entry] = [
        ("sequential", bench.blocking(lambda: [array_sum(data, i) for i in seeds])),
        ("aiopar", bench.awaiting(with_put)),
        ("aiopar no put", bench.awaiting(without_put)),
        ("run_in_executor", bench.awaiting(by_hand)),
    ]
    rows = bench.measure("put", entries, close_enough)
    for row in rows:
        if row.contender == "aiopar" and row.status == "ok":
            row.note = "put(x) once, then the ref to every task"
        if row.contender == "aiopar no put" and row.status == "ok":
            row.note = "x copied into shared memory for each task"
    return rows
