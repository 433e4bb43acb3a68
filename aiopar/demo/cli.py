"""``python -m aiopar demo``'s command line: parse the options, run the experiments in
order on one event loop, print each row as soon as it is done.

Runs in the main thread: :func:`main` starts the event loop (asyncio, trio or uvloop)
and the experiments of :mod:`aiopar.demo.experiments` run on it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections.abc import Callable, Sequence

import anyio

import aiopar

from .._load import CpuWatch
from .experiments import adds, array_chunks, matrix_graph, sleep_tasks, ticker_row
from .table import QUICK, QUICK_ENV, SLEEP_POOL_WORKERS, Row, Sizes, format_row, header, load_line
from .work import sleep_then_return

__all__ = ["main"]


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


async def _warm_up(pool: aiopar.Pool) -> float:
    """Start every worker of both pools, so the table times work and not start-up."""
    start = time.perf_counter()
    refs = [pool.submit(sleep_then_return, i, 0.05) for i in range(SLEEP_POOL_WORKERS)]
    default_workers = aiopar.get_default_pool().workers
    refs += [aiopar.submit(sleep_then_return, i, 0.05) for i in range(default_workers)]
    await aiopar.gather(*refs)
    return time.perf_counter() - start


async def _run(sizes: Sizes, emit: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []

    def report(row: Row) -> None:
        rows.append(row)
        emit(format_row(row))

    try:
        async with aiopar.Pool(workers=SLEEP_POOL_WORKERS) as pool:
            ready_s = await _warm_up(pool)
            emit(
                f"workers started in {ready_s:.2f} s: Pool(workers={SLEEP_POOL_WORKERS}) for"
                " the sleeping tasks, the default pool"
                f" ({aiopar.get_default_pool().workers} workers) for the CPU work"
            )
            emit("")
            emit(header())
            emit("-" * (len(header()) + 40))
            watch = CpuWatch()
            report(await sleep_tasks(pool, sizes))
            report(await matrix_graph(sizes))
            chain_row, tree_row = await adds(pool, sizes)
            report(chain_row)
            report(tree_row)
            report(await array_chunks(sizes))
            report(await ticker_row(sizes))
            load = load_line(watch.others(), os.cpu_count() or 1)
            if load:
                emit(load)
    finally:
        await aiopar.shutdown()
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiopar demo",
        description="Run a few classic parallel-Python experiments (remote sleep tasks,"
        " the Ray tutorial's matrix task graph and slow adds, a numpy array cut into"
        " chunks, CPU work beside a 1 ms ticker) sequentially and with aiopar, and print"
        " how long each took.",
    )
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio", "uvloop"),
        default="asyncio",
        help="event loop to run on (default: asyncio)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shrink every experiment: the whole demo took 6-7 s instead of 27 s on 2 cores"
        f" (also on when {QUICK_ENV}=1 is set in the environment)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and print its table; return the process exit code.

    Args:
        argv: the options that follow ``demo`` on the command line,
            ``--backend asyncio|trio|uvloop`` and ``--quick``; ``None`` reads
            ``sys.argv[1:]``, as :meth:`argparse.ArgumentParser.parse_args` does.
            ``AIOPAR_DEMO_QUICK=1`` in the environment also means ``--quick``.
    """
    start = time.perf_counter()
    parser = _parser()
    args = parser.parse_args(argv)
    if args.backend != "asyncio" and importlib.util.find_spec(args.backend) is None:
        parser.error(f"--backend {args.backend} needs {args.backend}: pip install {args.backend}")
    quick = args.quick or os.environ.get(QUICK_ENV, "") not in ("", "0")
    sizes = QUICK if quick else Sizes()
    backend, options = args.backend, {}
    if backend == "uvloop":
        backend, options = "asyncio", {"use_uvloop": True}

    def emit(line: str) -> None:
        print(line, flush=True)

    scale = "quick" if quick else "full"
    emit(f"aiopar demo on {args.backend}, {_cpu_count()} CPUs, {scale} sizes")
    anyio.run(_run, sizes, emit, backend=backend, backend_options=options)
    emit(f"demo finished in {time.perf_counter() - start:.1f} s")
    return 0
