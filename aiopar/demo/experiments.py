"""The experiments of the demo: each times the sequential way and the aiopar way.

Every coroutine here runs on the demo's event loop in the main thread and returns a
:class:`~aiopar.demo.table.Row` (or two); the work itself runs in the workers, through
the functions of :mod:`aiopar.demo.work`, but for the sequential versions, which run
in the main thread (the ticker row runs one inside the event loop on purpose).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import numpy as np
from anyio.abc import TaskStatus

import aiopar

from .._load import CpuWatch
from .table import ROW_NAMES, SLEEP_POOL_WORKERS, Row, Sizes
from .work import (
    FloatArray,
    create_matrix,
    halve_repeatedly,
    multiply_matrices,
    sleep_then_return,
    slow_add,
)

__all__ = ["adds", "array_chunks", "matrix_graph", "sleep_tasks", "ticker_row"]


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"aiopar demo: {what}: aiopar's answer differs from the sequential one")


async def _timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await work()
    return time.perf_counter() - start, result


async def _timed_watched(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any, float | None]:
    """Like :func:`_timed`, and the share of the CPUs other processes used meanwhile."""
    watch = CpuWatch()
    elapsed, result = await _timed(work)
    return elapsed, result, watch.others()


def _timed_sync(work: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


async def sleep_tasks(pool: aiopar.Pool, sizes: Sizes) -> Row:
    n, seconds = sizes.sleep_tasks, sizes.sleep_s
    seq_s, expected = _timed_sync(lambda: [sleep_then_return(i, seconds) for i in range(n)])
    f = pool.remote(sleep_then_return)

    async def run() -> list[int]:
        refs = [f.remote(i, seconds) for i in range(n)]
        return await aiopar.gather(*refs)

    par_s, got, others = await _timed_watched(run)
    _check(got == expected, ROW_NAMES[0])
    notes = f"{n} x time.sleep({seconds}) on Pool(workers={SLEEP_POOL_WORKERS})"
    return Row(ROW_NAMES[0], seq_s, par_s, notes, others)


async def matrix_graph(sizes: Sizes) -> Row:
    n = sizes.matrix_size
    seq_s, expected = _timed_sync(
        lambda: multiply_matrices(create_matrix(n, 1), create_matrix(n, 2))
    )

    async def run() -> FloatArray:
        x = aiopar.submit(create_matrix, n, 1)
        y = aiopar.submit(create_matrix, n, 2)
        z = aiopar.submit(multiply_matrices, x, y)  # starts when x and y are done
        return await z

    par_s, got, others = await _timed_watched(run)
    _check(np.allclose(got, expected), ROW_NAMES[1])
    notes = f"2 x create_matrix({n}) -> multiply_matrices; the multiply waits for both"
    return Row(ROW_NAMES[1], seq_s, par_s, notes, others)


async def adds(pool: aiopar.Pool, sizes: Sizes) -> tuple[Row, Row]:
    values = list(range(1, sizes.add_values + 1))
    add = functools.partial(slow_add, seconds=sizes.add_sleep_s)
    seq_s, expected = _timed_sync(lambda: functools.reduce(add, values))
    remote_add = pool.remote(add)

    async def chain() -> int:
        ref = remote_add.remote(values[0], values[1])
        for value in values[2:]:
            ref = remote_add.remote(ref, value)  # each add waits for the one before
        return await ref

    chain_s, chain_total, chain_others = await _timed_watched(chain)
    _check(chain_total == expected, ROW_NAMES[2])
    chain_row = Row(
        ROW_NAMES[2],
        seq_s,
        chain_s,
        f"{len(values) - 1} adds of {sizes.add_sleep_s} s, depth {len(values) - 1}",
        chain_others,
    )

    async def tree() -> int:
        return await aiopar.tree_reduce(add, values, pool=pool)

    tree_s, tree_total, tree_others = await _timed_watched(tree)
    _check(tree_total == expected, ROW_NAMES[3])
    depth = (len(values) - 1).bit_length()
    tree_row = Row(
        ROW_NAMES[3],
        seq_s,
        tree_s,
        f"{len(values) - 1} adds of {sizes.add_sleep_s} s, depth {depth}",
        tree_others,
    )
    return chain_row, tree_row


def _array(sizes: Sizes) -> FloatArray:
    return np.random.default_rng(0).normal(size=sizes.array_len)


async def array_chunks(sizes: Sizes) -> Row:
    array = _array(sizes)
    func = functools.partial(halve_repeatedly, rounds=sizes.rounds)
    seq_s, expected = _timed_sync(lambda: func(array))

    async def run() -> FloatArray:
        joined: FloatArray = await aiopar.amap_chunks(func, array, chunks=sizes.array_chunks)
        return joined

    par_s, got, others = await _timed_watched(run)
    _check(np.array_equal(got, expected), ROW_NAMES[4])
    notes = (
        f"{sizes.array_len:,} floats in {sizes.array_chunks} chunks,"
        f" [x / 2 for x in chunk] x {sizes.rounds}"
    )
    return Row(ROW_NAMES[4], seq_s, par_s, notes, others)


class _Ticker:
    """Sleeps ``interval`` over and over on the event loop, noting how late it wakes."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.ticks = 0
        self.worst_lag = 0.0
        self._since = 0.0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._since = time.perf_counter()
        task_status.started()
        while True:
            await anyio.sleep(self.interval)
            self._note_lag()
            self.ticks += 1
            self._since = time.perf_counter()

    def _note_lag(self) -> None:
        lag = time.perf_counter() - self._since - self.interval
        self.worst_lag = max(self.worst_lag, lag)

    def stop(self) -> None:
        """Count the tick still sleeping, for a loop that was blocked until now."""
        self._note_lag()


async def _beside_ticker(
    interval: float, work: Callable[[], Awaitable[Any]]
) -> tuple[float, Any, _Ticker]:
    """Run ``work`` while a :class:`_Ticker` runs on the same loop; return its time too."""
    ticker = _Ticker(interval)
    async with anyio.create_task_group() as tg:
        await tg.start(ticker.run)
        elapsed, result = await _timed(work)
        ticker.stop()
        tg.cancel_scope.cancel()
    return elapsed, result, ticker


async def ticker_row(sizes: Sizes) -> Row:
    array = _array(sizes)
    func = functools.partial(halve_repeatedly, rounds=sizes.rounds)
    pieces = np.array_split(array, 8)

    async def in_loop() -> FloatArray:
        return func(array)  # blocks the event loop: the ticker cannot run

    async def in_workers() -> FloatArray:
        return np.concatenate(await aiopar.amap(func, pieces))

    seq_s, expected, blocked = await _beside_ticker(sizes.tick_s, in_loop)
    watch = CpuWatch()
    par_s, got, free = await _beside_ticker(sizes.tick_s, in_workers)
    others = watch.others()
    _check(np.array_equal(got, expected), ROW_NAMES[5])
    notes = (
        f"ticker: {free.ticks} ticks, worst lag {free.worst_lag * 1e3:.1f} ms"
        f" (work in the loop: {blocked.ticks} ticks, worst lag {blocked.worst_lag * 1e3:.0f} ms)"
    )
    return Row(ROW_NAMES[5], seq_s, par_s, notes, others)
