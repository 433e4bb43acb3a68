"""Workload ``dask_dag``: the matrix DAG of ``matrix_dag`` on a Dask cluster, aiopar
beside hand-written Dask futures; run only when named (``--only dask_dag``) or with
``--cluster ADDRESS``.

Runs in the bench's main thread, the async rows on the bench's event loop; the tasks
(:func:`~aiopar.bench.workloads.matrix_dag.create_matrix`,
:func:`~aiopar.bench.workloads.matrix_dag.multiply`) run in the cluster's workers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..cluster import DASK_FUTURES, ClusterSession, measure_on_cluster
from ..rows import Result, Workload
from ..runner import Bench, Entry, close_enough
from ..sizes import Sizes
from .matrix_dag import create_matrix, multiply

__all__ = ["MOST_VS_DASK", "run", "workload"]

FloatArray = npt.NDArray[np.float64]

MOST_VS_DASK = 1.10
"""The bar: aiopar's time at most this many times the hand-written Dask futures' time."""


def meets(row: Result) -> bool:
    """Whether the row's time is within :data:`MOST_VS_DASK` of the dask futures'."""
    ratio = row.figures.get("vs_dask_futures")
    return ratio is not None and ratio <= MOST_VS_DASK


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``dask_dag`` at these sizes."""
    return Workload(
        "dask_dag",
        f"matrix DAG on a Dask cluster, create_matrix({sizes.matrix}²) ×2 → multiply",
        "the matrix_dag graph on a Dask cluster (--cluster ADDRESS, or a LocalCluster of"
        " one single-threaded worker process per core): aiopar.Pool(cluster=...) with"
        f" submit() refs beside '{DASK_FUTURES}', client.submit with the two futures as"
        " the product's arguments, awaited on an asynchronous Client",
        f"≤ ×{MOST_VS_DASK:.2f} {DASK_FUTURES}' time",
        meets,
    )


def run(bench: Bench) -> list[Result]:
    """Two ``create_matrix`` tasks feeding ``multiply`` on the cluster, through aiopar's
    task references and through plain Dask futures."""
    n = bench.sizes.matrix

    def entries(cluster: ClusterSession) -> list[Entry]:
        client = cluster.client

        async def with_aiopar() -> Any:
            pool = cluster.pool()
            x = pool.submit(create_matrix, n, 1)
            y = pool.submit(create_matrix, n, 2)
            return await pool.submit(multiply, x, y)  # x, y stay in the cluster

        async def by_hand() -> Any:
            # pure=False: a new key per call, so that no run reuses an earlier result
            x = client.submit(create_matrix, n, 1, pure=False)
            y = client.submit(create_matrix, n, 2, pure=False)
            return await client.submit(multiply, x, y, pure=False)  # x, y stay in the cluster

        return [
            (
                "sequential",
                bench.blocking(lambda: multiply(create_matrix(n, 1), create_matrix(n, 2))),
            ),
            ("aiopar", bench.awaiting(with_aiopar)),
            (DASK_FUTURES, bench.awaiting(by_hand)),
        ]

    return measure_on_cluster(bench, "dask_dag", entries, close_enough)
