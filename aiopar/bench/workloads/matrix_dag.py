"""Workload ``matrix_dag``: the Ray tutorial's task graph, two matrices feeding a product.

Runs in the bench's main thread; :func:`create_matrix` and :func:`multiply` run in the
workers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import peers
from ..rows import Result, Workload, at_least
from ..runner import Bench, Entry, close_enough
from ..sizes import Sizes

__all__ = ["create_matrix", "multiply", "run", "workload"]

FloatArray = npt.NDArray[np.float64]


def create_matrix(size: int, seed: int) -> FloatArray:
    """A ``size`` x ``size`` matrix of standard normal numbers drawn from ``seed``."""
    return np.random.default_rng(seed).normal(size=(size, size))


def multiply(x: FloatArray, y: FloatArray) -> FloatArray:
    """The matrix product ``x @ y``."""
    return x @ y


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``matrix_dag`` at these sizes."""
    return Workload(
        "matrix_dag",
        f"matrix DAG, create_matrix({sizes.matrix}²) ×2 → multiply",
        "two create_matrix tasks feeding multiply through submit() refs",
        "≥ ×0.85",
        at_least(0.85),
    )


def run(bench: Bench) -> list[Result]:
    """Two ``create_matrix`` tasks feeding ``multiply``, through task references."""
    n = bench.sizes.matrix

    async def with_aiopar() -> FloatArray:
        x = bench.pool.submit(create_matrix, n, 1)
        y = bench.pool.submit(create_matrix, n, 2)
        return await bench.pool.submit(multiply, x, y)  # starts when x and y are done

    async def by_hand() -> FloatArray:
        loop = asyncio.get_running_loop()
        x, y = await asyncio.gather(
            loop.run_in_executor(bench.executor, create_matrix, n, 1),
            loop.run_in_executor(bench.executor, create_matrix, n, 2),
        )
        return await loop.run_in_executor(bench.executor, multiply, x, y)

    def with_refs(session: Any) -> FloatArray:
        x = session.submit(create_matrix, n, 1)
        y = session.submit(create_matrix, n, 2)
        return session.get([session.submit(multiply, x, y)])[0]  # type: ignore[no-any-return]

    entries: list[Entry] = [
        ("sequential", bench.blocking(lambda: multiply(create_matrix(n, 1), create_matrix(n, 2)))),
        ("aiopar", bench.awaiting(with_aiopar)),
        ("run_in_executor", bench.awaiting(by_hand)),
    ]
    rows = bench.measure("matrix_dag", entries, close_enough)
    # joblib and mpire have no task graph: nothing comparable to measure
    others = bench.others(
        "matrix_dag",
        lambda s: bench.blocking(lambda: with_refs(s)),
        close_enough,
        libraries=peers.GRAPHS,
    )
    return rows + others
