"""Ray-style tasks with aiopar: remote functions, refs, a task graph and a tree reduction.

This is a well-known Ray tutorial blog post (remote functions, a matrix task graph, sums
as a chain and as a tree) moved to aiopar. The changes are mechanical:

    import ray                  ->  import aiopar
    @ray.remote                 ->  @aiopar.remote
    f.remote(x)                 ->  f.remote(x)          (returns an aiopar.TaskRef)
    ray.get(refs)               ->  await aiopar.gather(*refs)
    ray.get(ref)                ->  await ref

and the code runs inside an async function, so the event loop (asyncio, uvloop or trio)
stays free while the work runs on a local process pool, one worker per core. Calling a
remote function directly, ``f(x)``, still runs it locally: the "sequential" timings below
use exactly that.

The four parts of the post:

1. Many independent tasks: ``f.remote(i)`` for every i, then one ``gather``.
2. A task graph: two ``create_matrix`` tasks feed ``multiply_matrices``. Passing refs as
   arguments makes them dependencies; aiopar starts the multiplication when both
   matrices exist and hands it the arrays (through shared memory, not the parent).
3. Aggregation as a linear chain: each ``add`` waits for the previous one, depth n - 1.
4. Aggregation as a tree: the same sum as a balanced tree of refs built by hand, and
   with ``aiopar.tree_reduce``, depth ceil(log2 n).

The post used 100 one-second tasks and 7000 x 7000 matrices; the sizes here are scaled
so the script ran in 8.3 s on two busy cores (``--quick``: 2.4 s).

Run::

    python examples/ray_style.py
    python examples/ray_style.py --quick
    python examples/ray_style.py --backend trio      # or uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np

import aiopar

# --- the remote functions: module level, as in the post ------------------------------


@aiopar.remote
def f(x: int, delay: float) -> int:
    """Sleep for ``delay`` seconds, then return ``x`` (the post's ``f``, 1 s there)."""
    time.sleep(delay)
    return x


@aiopar.remote
def create_matrix(size: tuple[int, int], seed: int) -> np.ndarray:
    """A matrix of standard normal samples (seeded, so the check below can redo it)."""
    return np.random.default_rng(seed).normal(size=size)


@aiopar.remote
def multiply_matrices(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The matrix product of ``x`` and ``y``."""
    product: np.ndarray = np.dot(x, y)
    return product


@aiopar.remote
def add(x: int, y: int, delay: float) -> int:
    """Sleep for ``delay`` seconds, then return ``x + y`` (the post's slow ``add``)."""
    time.sleep(delay)
    return x + y


# --- sizes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    tasks: int  # part 1: number of sleeping tasks (the post: 100)
    task_delay: float  # part 1: seconds each one sleeps (the post: 1)
    matrix: int  # part 2: the matrices are matrix x matrix (the post: 7000)
    add_delay: float  # parts 3 and 4: seconds each add sleeps (the post: 1)


FULL = Sizes(tasks=20, task_delay=0.1, matrix=1500, add_delay=0.2)
QUICK = Sizes(tasks=8, task_delay=0.05, matrix=300, add_delay=0.05)

VALUES = list(range(1, 9))  # the post aggregates 1..8


def check(ok: bool, what: str) -> None:
    """Stop the script with a message if a result is wrong (unlike assert, not optimised away)."""
    if not ok:
        raise SystemExit(f"wrong result: {what}")


# --- the four parts ---------------------------------------------------------------------


async def independent_tasks(sizes: Sizes) -> None:
    """Part 1: many independent tasks, started at once, collected with one gather."""
    start = time.perf_counter()
    local = [f(i, sizes.task_delay) for i in range(sizes.tasks)]  # runs here, one by one
    sequential = time.perf_counter() - start

    start = time.perf_counter()
    refs = [f.remote(i, sizes.task_delay) for i in range(sizes.tasks)]  # returns at once
    results = await aiopar.gather(*refs)  # ray.get(refs)
    parallel = time.perf_counter() - start

    check(results == local == list(range(sizes.tasks)), "gather of f.remote(i)")
    print(
        f"1. {sizes.tasks} tasks of {sizes.task_delay:.2f} s: "
        f"sequential {sequential:.2f} s, aiopar {parallel:.2f} s"
    )


async def task_graph(sizes: Sizes) -> None:
    """Part 2: create two matrices, multiply them; the refs carry the dependencies."""
    shape = (sizes.matrix, sizes.matrix)

    start = time.perf_counter()
    expected = multiply_matrices(create_matrix(shape, 1), create_matrix(shape, 2))
    sequential = time.perf_counter() - start

    start = time.perf_counter()
    x_ref = create_matrix.remote(shape, 1)
    y_ref = create_matrix.remote(shape, 2)
    z_ref = multiply_matrices.remote(x_ref, y_ref)  # starts when both matrices exist
    z = await z_ref  # ray.get(z_id)
    parallel = time.perf_counter() - start

    check(z.shape == shape and np.allclose(z, expected), "multiply_matrices(x_ref, y_ref)")
    print(
        f"2. task graph, two {sizes.matrix}x{sizes.matrix} matrices then their product: "
        f"sequential {sequential:.2f} s, aiopar {parallel:.2f} s"
    )


async def aggregation(sizes: Sizes) -> None:
    """Parts 3 and 4: the sum of 1..8 as a linear chain, a tree of refs, tree_reduce."""
    delay = sizes.add_delay

    # Linear chain, depth 7: every add needs the previous result.
    start = time.perf_counter()
    ref = add.remote(VALUES[0], VALUES[1], delay)
    for value in VALUES[2:]:
        ref = add.remote(ref, value, delay)
    chain_total = await ref
    chain = time.perf_counter() - start

    # The post's tree, built by hand from refs, depth 3.
    start = time.perf_counter()
    level = [add.remote(a, b, delay) for a, b in zip(VALUES[::2], VALUES[1::2], strict=True)]
    while len(level) > 1:
        level = [add.remote(a, b, delay) for a, b in zip(level[::2], level[1::2], strict=True)]
    tree_total = await level[0]
    tree = time.perf_counter() - start

    # The same tree without the bookkeeping: any associative two-argument function.
    start = time.perf_counter()
    reduced_total = await aiopar.tree_reduce(functools.partial(add, delay=delay), VALUES)
    reduced = time.perf_counter() - start

    check(chain_total == tree_total == reduced_total == sum(VALUES), "sums of 1..8")
    print(
        f"3. sum of 1..8 with a {delay:.2f} s add = {reduced_total}: "
        f"linear chain {chain:.2f} s, tree of refs {tree:.2f} s, tree_reduce {reduced:.2f} s"
    )


async def main(sizes: Sizes, backend: str) -> None:
    """Start the default pool, run the four parts, shut the pool down."""
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"aiopar ray-style demo on {workers} workers ({backend})")

    # The first call starts the worker processes; do it before timing anything.
    start = time.perf_counter()
    await aiopar.gather(*[create_matrix.remote((2, 2), i) for i in range(workers or 1)])
    print(f"0. pool started in {time.perf_counter() - start:.2f} s")

    try:
        await independent_tasks(sizes)
        await task_graph(sizes)
        await aggregation(sizes)
    finally:
        await aiopar.shutdown()
    print("all results checked")


def run(backend: str, coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``coro_fn()`` on the chosen event loop."""
    if backend == "trio":
        import trio

        trio.run(coro_fn)
    elif backend == "uvloop":
        import uvloop

        uvloop.run(coro_fn())
    else:
        asyncio.run(coro_fn())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (2.4 s on 2 cores)")
    parser.add_argument("--backend", choices=["asyncio", "uvloop", "trio"], default="asyncio")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    run(args.backend, functools.partial(main, sizes, args.backend))
