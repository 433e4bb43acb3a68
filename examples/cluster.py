"""The same aiopar code on the local process pool and on a Dask cluster.

``run(pool)`` below is ordinary aiopar code: a task graph (two matrices, then their
product, through ``submit`` refs), ``amap_chunks`` over an array, and a ``tree_reduce``.
The script runs it twice: on a local ``aiopar.Pool`` of worker processes, then on
``aiopar.Pool(cluster=address)``, where the tasks run in the workers of a Dask cluster
and the matrices pass from task to task inside the cluster, not through this process.
The answers are checked against plain numpy, and the seconds of each run printed.

Without ``--address`` the script starts a Dask ``LocalCluster`` of its own (two worker
processes of one thread each) and stops it at the end. With ``--address`` it uses a
running cluster, for example one started with::

    dask scheduler --port 8786
    dask worker tcp://127.0.0.1:8786 --nworkers 2 --nthreads 1

Needs Dask's distributed (``pip install 'aiopar[dask]'``). Run::

    python examples/cluster.py
    python examples/cluster.py --quick
    python examples/cluster.py --address tcp://127.0.0.1:8786
"""

from __future__ import annotations

import argparse
import operator
import time
from typing import Any

import anyio
import numpy as np

import aiopar

# --- the functions that run in the workers: module level ---------------------------------


def create_matrix(size: int, seed: int) -> np.ndarray:
    """A ``size`` x ``size`` matrix of standard normal numbers drawn from ``seed``."""
    return np.random.default_rng(seed).normal(size=(size, size))


def multiply(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The matrix product ``x @ y``."""
    return x @ y


def smooth(piece: np.ndarray) -> np.ndarray:
    """Ten rounds of ``y = sin(y) + cos(y)`` over a piece of an array."""
    for _ in range(10):
        piece = np.sin(piece) + np.cos(piece)
    return piece


def check(ok: bool, what: str) -> None:
    """Stop the script with a message if a result is wrong (unlike assert, not optimised away)."""
    if not ok:
        raise SystemExit(f"wrong result: {what}")


# --- the program: the same code whatever the pool runs on -------------------------------


async def run(pool: aiopar.Pool, size: int, data: np.ndarray) -> dict[str, Any]:
    """The task graph, the chunked map and the reduction, on ``pool``."""
    x = pool.submit(create_matrix, size, 1)
    y = pool.submit(create_matrix, size, 2)
    product = await pool.submit(multiply, x, y)  # x and y go straight to multiply's worker
    smoothed = await pool.amap_chunks(smooth, data)
    total = await pool.tree_reduce(operator.add, range(1, 101))
    return {"product": product, "smoothed": smoothed, "total": total}


async def timed(label: str, pool: aiopar.Pool, size: int, data: np.ndarray) -> dict[str, Any]:
    start = time.perf_counter()
    answers = await run(pool, size, data)
    print(f"{label:<34} {time.perf_counter() - start:6.2f} s")
    return answers


async def main(address: str, size: int, length: int) -> None:
    data = np.random.default_rng(0).normal(size=length)
    async with aiopar.Pool(workers=2) as local:
        await timed("local pool, 2 worker processes", local, size, data)  # starts the workers
        here = await timed("local pool, again", local, size, data)
    async with aiopar.Pool(cluster=address) as cluster:  # owns its client: closed here
        await timed(f"cluster at {address}", cluster, size, data)
        there = await timed("cluster, again", cluster, size, data)

    expected = create_matrix(size, 1) @ create_matrix(size, 2)
    for answers in (here, there):
        check(np.allclose(answers["product"], expected), "the matrix product")
        check(np.allclose(answers["smoothed"], smooth(data)), "amap_chunks(smooth, data)")
        check(answers["total"] == 5050, "tree_reduce(add, 1..100)")
    print("all results checked: the same answers on both pools")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="a running Dask scheduler (default: start one)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for the tests")
    return parser.parse_args()


if __name__ == "__main__":  # needed: the cluster's and the pool's workers import this file
    args = parse()
    size, length = (200, 200_000) if args.quick else (2000, 1_000_000)
    if args.address is not None:
        anyio.run(main, args.address, size, length)
    else:
        from distributed import LocalCluster

        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as local_cluster:
            print(f"started a LocalCluster at {local_cluster.scheduler_address}")
            anyio.run(main, local_cluster.scheduler_address, size, length)
