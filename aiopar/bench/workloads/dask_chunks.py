"""Workload ``dask_chunks``: ``amap_chunks`` of ``vec_heavy`` on a Dask cluster, aiopar
beside hand-written Dask futures; run only when named (``--only dask_chunks``) or with
``--cluster ADDRESS``.

Runs in the bench's main thread, the async rows on the bench's event loop;
:func:`~aiopar.bench.workloads.vec_heavy.vec_heavy` runs in the cluster's workers.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..cluster import DASK_FUTURES, ClusterSession, measure_on_cluster
from ..rows import Result, Workload, count
from ..runner import Bench, Entry, close_enough
from ..sizes import Sizes
from .dask_dag import MOST_VS_DASK, meets
from .vec_heavy import vec_heavy

__all__ = ["run", "workload"]


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``dask_chunks`` at these sizes."""
    return Workload(
        "dask_chunks",
        f"amap_chunks(vec_heavy, {count(sizes.heavy_len)} float64) on a Dask cluster",
        f"{sizes.heavy_rounds} rounds of y = sin(y) + cos(y) over"
        f" {sizes.heavy_len * 8 / 1e6:.0f} MB on a Dask cluster: aiopar.Pool(cluster=...)"
        f".amap_chunks beside '{DASK_FUTURES}', the array cut into one piece per worker"
        " thread, scattered, client.map over the pieces, gathered and joined, on an"
        " asynchronous Client",
        f"≤ ×{MOST_VS_DASK:.2f} {DASK_FUTURES}' time",
        meets,
    )


def run(bench: Bench) -> list[Result]:
    """``amap_chunks(vec_heavy, data)`` on the cluster, and the same by hand with Dask."""
    func = functools.partial(vec_heavy, rounds=bench.sizes.heavy_rounds)
    data = bench.array(bench.sizes.heavy_len)

    def entries(cluster: ClusterSession) -> list[Entry]:
        client = cluster.client

        async def with_aiopar() -> Any:
            return await cluster.pool().amap_chunks(func, data)

        async def by_hand() -> Any:
            pieces = np.array_split(data, cluster.threads)
            scattered = await client.scatter(pieces, hash=False)
            answers = await client.gather(client.map(func, scattered, pure=False))
            return np.concatenate(answers)

        return [
            ("sequential", bench.blocking(lambda: func(data))),
            ("aiopar", bench.awaiting(with_aiopar)),
            (DASK_FUTURES, bench.awaiting(by_hand)),
        ]

    return measure_on_cluster(bench, "dask_chunks", entries, close_enough)
