"""``python -m aiopar demo``: classic parallel-Python experiments, rewritten with aiopar.

Each experiment runs twice, once the plain sequential way and once with aiopar, checks
that both give the same answer, and prints one row of a table as soon as it finishes::

    experiment                     sequential s  aiopar s   speedup  notes
    ----------------------------------------------------------------------------------
    sleep tasks (remote + gather)          4.01      1.01     3.96x  40 x time.sleep(0.1) ...
    tree of adds (tree_reduce)             1.75      0.76     2.32x  7 adds of 0.25 s, ...

The rows come from two well-known examples, the Ray tutorial (remote tasks, a matrix
task graph, a slow ``add``) and the ``ProcessPoolExecutor`` recipe that cuts a numpy
array into chunks:

1. Ray's 100 one-second ``f.remote(i)`` tasks, as 40 tasks of ``time.sleep(0.1)`` on
   ``Pool(workers=4)`` with ``pool.remote`` and :func:`aiopar.gather`.
2. Two ``create_matrix`` tasks feeding ``multiply_matrices`` through ``TaskRef``
   arguments (a task graph: little to gain, the multiply waits for both).
3. Eight values summed by a slow ``add``: as a linear chain of ``TaskRef``s (depth 7)
   and with :func:`aiopar.tree_reduce` (depth 3).
4. The chunked array: a 1e5-element array cut into 15 chunks, each processed by a
   per-element Python loop, with :func:`aiopar.amap_chunks`.
5. The same kind of CPU work next to a 1 ms ticker on the same event loop: run inside
   the loop it stalls the ticker; sent through :func:`aiopar.amap` the ticker keeps
   ticking. The notes give ticks served and the worst loop lag.

A row slower with aiopar than without says why in its notes: two rows are so by nature
(the matrix graph, the chain), and any row is when other processes kept the CPUs busy
while aiopar ran (measured from ``/proc``, see :mod:`aiopar._load`); the share other
processes used during the whole demo is printed under the table when it is large.

``--quick`` (or ``AIOPAR_DEMO_QUICK=1`` in the environment, which lets CI run the
README's command as written) shrinks every size: the whole demo took 6-7 s on 2 cores
instead of 27 s (the tests use it). Everything runs in the main thread's event loop but
the work, which runs in the workers; the functions sent there live at module level here,
so the workers import them by name.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import numpy.typing as npt
from anyio.abc import TaskStatus

import aiopar

from ._load import CpuWatch

__all__ = [
    "BUSY_SHARE",
    "QUICK",
    "QUICK_ENV",
    "ROW_NAMES",
    "Sizes",
    "WHY_SLOWER",
    "create_matrix",
    "halve_repeatedly",
    "main",
    "multiply_matrices",
    "sleep_then_return",
    "slow_add",
]

FloatArray = npt.NDArray[np.float64]

ROW_NAMES = (
    "sleep tasks (remote + gather)",
    "matrix task graph (submit)",
    "chain of adds (TaskRefs)",
    "tree of adds (tree_reduce)",
    "array chunks (amap_chunks)",
    "amap beside a 1 ms ticker",
)
"""The experiment column of the table, in the order the rows are printed."""

SLEEP_POOL_WORKERS = 4


# --- functions that run in the workers -----------------------------------------------


def sleep_then_return(x: int, seconds: float) -> int:
    """Sleep ``seconds`` (blocking), then return ``x``: the Ray tutorial's ``f``."""
    time.sleep(seconds)
    return x


def create_matrix(size: int, seed: int) -> FloatArray:
    """Return a ``size`` x ``size`` matrix of standard normal numbers drawn from ``seed``."""
    return np.random.default_rng(seed).normal(size=(size, size))


def multiply_matrices(x: FloatArray, y: FloatArray) -> FloatArray:
    """Return the matrix product ``x @ y``."""
    return x @ y


def slow_add(x: int, y: int, seconds: float) -> int:
    """Sleep ``seconds`` (blocking), then return ``x + y``: the Ray tutorial's slow ``add``."""
    time.sleep(seconds)
    return x + y


def halve_repeatedly(array: FloatArray, rounds: int) -> FloatArray:
    """Apply the chunked-array recipe's ``[item / 2 for item in array]`` ``rounds`` times.

    Pure Python: costs about 3 ms per round for 1e5 items on one core, holding the GIL throughout.
    Halving is exact, so the answer equals ``array / 2.0**rounds`` bit for bit.
    """
    values: list[float] = array.tolist()
    for _ in range(rounds):
        values = [item / 2 for item in values]
    return np.asarray(values, dtype=np.float64)


# --- sizes and the table ---------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How big each experiment is; the defaults are the full demo (27 s on 2 busy cores)."""

    sleep_tasks: int = 40
    sleep_s: float = 0.1
    matrix_size: int = 2000
    add_values: int = 8
    add_sleep_s: float = 0.25
    array_len: int = 100_000
    array_chunks: int = 15
    rounds: int = 450
    tick_s: float = 0.001


QUICK = Sizes(sleep_tasks=16, sleep_s=0.05, matrix_size=1500, add_sleep_s=0.05, rounds=100)
"""The sizes of ``--quick``: the whole demo in 6-7 s on 2 cores (measured).

Each row still shows what it is there for on 2 cores: the matrices stay big enough
(1500², about 0.2 s) that the trips of the matrices between processes do not hide the
graph, and the array's work per chunk (about 20 ms) is far above the cost of sending it.
"""

QUICK_ENV = "AIOPAR_DEMO_QUICK"
"""An environment variable that, set to anything but ``""`` or ``"0"``, means ``--quick``."""

BUSY_SHARE = 0.15
"""Other processes' share of the CPUs above which the demo says timings are disturbed."""

WHY_SLOWER = {
    ROW_NAMES[1]: "numpy already runs the multiply on every core, and the matrices travel"
    " between processes: the graph is shown for its dependencies, not for speed",
    ROW_NAMES[2]: "each add waits for the one before: a chain has nothing to run in"
    " parallel (the tree below does)",
}
"""Why a row is slower with aiopar by nature, printed beside it when it is."""


@dataclass(frozen=True)
class Row:
    """One finished experiment."""

    name: str
    sequential_s: float
    aiopar_s: float
    notes: str
    others: float | None = None
    """Share of the CPUs other processes used while aiopar ran (None: not measured)."""

    @property
    def speedup(self) -> float:
        """How many times faster aiopar was than the sequential version."""
        return self.sequential_s / self.aiopar_s if self.aiopar_s > 0 else float("inf")

    def why_slower(self) -> str:
        """Why aiopar was slower here, or ``""`` when it was not (as printed, to 2 places)."""
        if round(self.speedup, 2) >= 1.0:
            return ""
        if self.name in WHY_SLOWER:
            return WHY_SLOWER[self.name]
        if self.others is not None and self.others >= BUSY_SHARE:
            return f"other processes used {self.others:.0%} of the CPUs while aiopar ran"
        return (
            "at these sizes, starting the tasks and moving their data cost more than the"
            " work they share out"
        )


_NAME_WIDTH = max(len(name) for name in ROW_NAMES)


def _header() -> str:
    return (
        f"{'experiment':<{_NAME_WIDTH}}  {'sequential s':>12}  {'aiopar s':>8}"
        f"  {'speedup':>8}  notes"
    )


def _format_row(row: Row) -> str:
    why = row.why_slower()
    notes = f"{row.notes}; slower: {why}" if why else row.notes
    return (
        f"{row.name:<{_NAME_WIDTH}}  {row.sequential_s:>12.2f}  {row.aiopar_s:>8.2f}"
        f"  {row.speedup:>7.2f}x  {notes}"
    )


def _load_line(others: float | None, cpus: int) -> str:
    """The line under the table about other processes, or ``""`` when they were quiet."""
    if others is None or others < BUSY_SHARE:
        return ""
    return (
        f"machine load: other processes used {others:.0%} of the {cpus} CPUs during the"
        " demo, so the timings above are disturbed; run it again on a quieter machine"
    )


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


# --- the experiments -------------------------------------------------------------------


async def _sleep_tasks(pool: aiopar.Pool, sizes: Sizes) -> Row:
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


async def _matrix_graph(sizes: Sizes) -> Row:
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


async def _adds(pool: aiopar.Pool, sizes: Sizes) -> tuple[Row, Row]:
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


async def _array_chunks(sizes: Sizes) -> Row:
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


async def _ticker_row(sizes: Sizes) -> Row:
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


# --- running it --------------------------------------------------------------------------


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
        emit(_format_row(row))

    try:
        async with aiopar.Pool(workers=SLEEP_POOL_WORKERS) as pool:
            ready_s = await _warm_up(pool)
            emit(
                f"workers started in {ready_s:.2f} s: Pool(workers={SLEEP_POOL_WORKERS}) for"
                " the sleeping tasks, the default pool"
                f" ({aiopar.get_default_pool().workers} workers) for the CPU work"
            )
            emit("")
            emit(_header())
            emit("-" * (len(_header()) + 40))
            watch = CpuWatch()
            report(await _sleep_tasks(pool, sizes))
            report(await _matrix_graph(sizes))
            chain_row, tree_row = await _adds(pool, sizes)
            report(chain_row)
            report(tree_row)
            report(await _array_chunks(sizes))
            report(await _ticker_row(sizes))
            load = _load_line(watch.others(), os.cpu_count() or 1)
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
