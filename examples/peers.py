"""The same work through aiopar and through each peer library that is installed.

    python examples/peers.py [--quick] [--workers N]

Two workloads:

* ``cheap``: ``square(x)`` over many items, where moving items costs more than the
  work: the map's chunking decides.
* ``tasks``: 64 calls of about 20 ms of pure Python each (a loop holding the GIL).

Each timing is of the second of two runs in one session of the library: the first
starts its workers. Contenders: aiopar (on asyncio and on trio), and joblib, mpire,
aiomultiprocess and trio-parallel when they are importable (``pip install joblib
mpire aiomultiprocess trio-parallel``), each in its own documented idiom, with as many
workers. Every answer is checked against the plain loop's. See
docs/coming-from-peers.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

import anyio

import aiopar


def square(x: int) -> int:
    return x * x


def spin(seed: int, iterations: int = 350_000) -> int:
    """About 20 ms of pure Python."""
    value = seed
    for i in range(iterations):
        value = (value * 31 + i) % 1_000_003
    return value


async def square_async(x: int) -> int:  # aiomultiprocess runs coroutine functions
    return square(x)


async def spin_async(seed: int) -> int:
    return spin(seed)


# ── one function per contender: warm up, then time one run of `func` over `items` ────


class Timer:
    """Times the second of two runs (the first starts and warms the workers), and
    checks both answers."""

    def __init__(self, expected: list[int]) -> None:
        self.expected = expected
        self.seconds = 0.0
        self._start = 0.0

    def check(self, answer: list[int]) -> None:
        if list(answer) != self.expected:
            raise AssertionError("a contender returned a wrong answer")

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self, answer: list[int]) -> None:
        self.seconds = time.perf_counter() - self._start
        self.check(answer)


def _with_aiopar(
    pool: aiopar.Pool, func: Any, items: list[int], timer: Timer, backend: str
) -> None:
    async def main() -> None:
        timer.check(await pool.amap(func, items))
        timer.start()
        timer.stop(await pool.amap(func, items))

    anyio.run(main, backend=backend)


def with_aiopar_asyncio(
    pool: aiopar.Pool, workers: int, func: Any, items: list[int], timer: Timer
) -> None:
    _with_aiopar(pool, func, items, timer, "asyncio")


def with_aiopar_trio(
    pool: aiopar.Pool, workers: int, func: Any, items: list[int], timer: Timer
) -> None:
    _with_aiopar(pool, func, items, timer, "trio")


def with_joblib(pool: aiopar.Pool, workers: int, func: Any, items: list[int], timer: Timer) -> None:
    from joblib import Parallel, delayed

    with Parallel(n_jobs=workers) as parallel:
        timer.check(parallel(delayed(func)(x) for x in items))
        timer.start()
        timer.stop(parallel(delayed(func)(x) for x in items))


def with_mpire(pool: aiopar.Pool, workers: int, func: Any, items: list[int], timer: Timer) -> None:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=workers, start_method="forkserver", keep_alive=True) as pool:
        timer.check(pool.map(func, items))
        timer.start()
        timer.stop(pool.map(func, items))


def with_aiomultiprocess(
    pool: aiopar.Pool, workers: int, func: Any, items: list[int], timer: Timer
) -> None:
    import aiomultiprocess

    async def main() -> None:
        async with aiomultiprocess.Pool(processes=workers) as pool:
            timer.check(await pool.map(func, items))
            timer.start()
            timer.stop(await pool.map(func, items))

    asyncio.run(main())


def with_trio_parallel(
    pool: aiopar.Pool, workers: int, func: Any, items: list[int], timer: Timer
) -> None:
    import trio
    import trio_parallel

    async def run_all(limiter: trio.CapacityLimiter) -> list[int]:
        results = [0] * len(items)

        async def one(index: int, item: int) -> None:
            results[index] = await trio_parallel.run_sync(func, item, limiter=limiter)

        async with trio.open_nursery() as nursery:
            for index, item in enumerate(items):
                nursery.start_soon(one, index, item)
        return results

    async def main() -> None:
        limiter = trio.CapacityLimiter(workers)
        timer.check(await run_all(limiter))
        timer.start()
        timer.stop(await run_all(limiter))

    trio.run(main)


Contender = Callable[[aiopar.Pool, int, Any, list[int], Timer], None]

#: label, module to import, function, whether it takes the coroutine function
CONTENDERS: list[tuple[str, str, Contender, bool]] = [
    ("aiopar (asyncio)", "aiopar", with_aiopar_asyncio, False),
    ("aiopar (trio)", "aiopar", with_aiopar_trio, False),
    ("joblib", "joblib", with_joblib, False),
    ("mpire", "mpire", with_mpire, False),
    ("aiomultiprocess", "aiomultiprocess", with_aiomultiprocess, True),
    ("trio-parallel", "trio_parallel", with_trio_parallel, False),
]


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()
    workers = args.workers
    cheap = list(range(2_000 if args.quick else 20_000))
    tasks = list(range(8 if args.quick else 64))
    work: dict[str, tuple[Callable[[int], int], Callable[[int], Any], list[int]]] = {
        "cheap": (square, square_async, cheap),
        "tasks": (spin, spin_async, tasks),
    }
    print(f"{workers} workers; cheap: {len(cheap)} items of square(x); tasks: {len(tasks)} x 20 ms")
    pool = aiopar.Pool(workers=workers)
    pool.open()
    try:
        for name, (func, async_func, items) in work.items():
            timer = Timer([func(x) for x in items])
            timer.start()
            timer.stop([func(x) for x in items])
            print(f"{name:6} {'plain loop':18} {timer.seconds:7.3f} s")
            for label, library, contender, coroutine in CONTENDERS:
                if library != "aiopar" and not installed(library):
                    print(f"{name:6} {label:18} not installed")
                    continue
                contender(pool, workers, async_func if coroutine else func, items, timer)
                print(f"{name:6} {label:18} {timer.seconds:7.3f} s")
    finally:
        pool.close()
    print("all answers checked")


if __name__ == "__main__":
    main()
