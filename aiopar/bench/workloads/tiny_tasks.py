"""Workload ``tiny_tasks``: ``submit`` + ``gather`` of thousands of tasks that do nothing.

``double(i)`` takes well under a microsecond, so each row measures what one task costs
the library: pickling, the pipe, the futures, the wake-ups. Besides the timed rounds
(:func:`run`), two figures land in the notes and in the JSON ``figures``:

* the event-loop thread's CPU time per ``submit`` (``time.thread_time`` around the
  loop of calls, so only the loop thread's own work counts, not the pool's threads);
* one task's latency on an idle pool, submit → result, one call at a time
  (:func:`latency`), so that speeding up many tasks at once does not slow one down.

Runs in the bench's main thread, the async contenders on the bench's event loop;
:func:`double` runs in the workers.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import peers
from ..rows import Result, Workload
from ..runner import Bench, Entry, equal, failure
from ..sizes import Sizes

__all__ = ["double", "latency", "run", "workload"]

MUST_US = 60.0
"""The bar: at most this many µs per task, and at most half of run_in_executor's time."""


def double(x: int) -> int:
    """``2 * x``: a task whose work is nothing next to the cost of sending it."""
    return 2 * x


def _meets(row: Result) -> bool:
    us, ratio = row.figures.get("us_per_task"), row.figures.get("vs_run_in_executor")
    return us is not None and ratio is not None and us <= MUST_US and ratio <= 0.5


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``tiny_tasks`` at these sizes."""
    n = sizes.tiny_tasks
    return Workload(
        "tiny_tasks",
        f"submit + gather of {n:,} tiny tasks",
        f"{n:,} × submit(double, i), then gather; run_in_executor: asyncio.gather of"
        f" {n:,} loop.run_in_executor calls; notes: µs per task, the loop thread's CPU per"
        " call, one task's latency on an idle pool",
        f"≤ {MUST_US:.0f} µs/task, ≤ ½ run_in_executor's time [≤ 25 µs]",
        _meets,
    )


async def _one_by_one(start: Callable[[], Any], calls: int) -> float:
    """Median seconds from ``start()`` to its result, one call at a time."""
    seconds = []
    for _ in range(calls):
        begin = time.perf_counter()
        await start()
        seconds.append(time.perf_counter() - begin)
    return statistics.median(seconds)


def latency(bench: Bench, calls: int) -> dict[str, float]:
    """One task at a time on the idle pool and on the idle executor: median µs from the
    call to its result, by row name. Blocks."""

    async def both() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        aiopar_s = await _one_by_one(lambda: bench.pool.submit(double, 1), calls)
        executor_s = await _one_by_one(
            lambda: loop.run_in_executor(bench.executor, double, 1), calls
        )
        return {"aiopar": aiopar_s * 1e6, "run_in_executor": executor_s * 1e6}

    return bench.runner.run(both())


def _timed_calls(loop_cpu: list[float], calls: Callable[[], list[Any]]) -> list[Any]:
    """``calls()``, adding the calling thread's CPU seconds it took to ``loop_cpu``."""
    begin = time.thread_time()
    made = calls()
    loop_cpu.append(time.thread_time() - begin)
    return made


def _per_call_us(loop_cpu: Sequence[float], calls: int) -> float:
    timed = loop_cpu[1:] or loop_cpu  # the first one is the untimed run's
    return statistics.median(timed) / calls * 1e6


def run(bench: Bench) -> list[Result]:
    """``submit`` + ``gather`` of tiny tasks, against a loop and ``run_in_executor``."""
    n = bench.sizes.tiny_tasks
    items = list(range(n))
    pool = bench.pool
    loop_cpu: dict[str, list[float]] = {"aiopar": [], "run_in_executor": []}

    async def submitted() -> list[int]:
        refs = _timed_calls(loop_cpu["aiopar"], lambda: [pool.submit(double, i) for i in items])
        return await pool.gather(*refs)

    async def by_hand() -> list[int]:
        loop = asyncio.get_running_loop()
        futures = _timed_calls(
            loop_cpu["run_in_executor"],
            lambda: [loop.run_in_executor(bench.executor, double, i) for i in items],
        )
        return list(await asyncio.gather(*futures))

    entries: list[Entry] = [
        ("sequential", bench.blocking(lambda: [double(i) for i in items])),
        ("aiopar", bench.awaiting(submitted)),
        ("run_in_executor", bench.awaiting(by_hand)),
    ]
    rows = bench.measure("tiny_tasks", entries, equal)
    try:  # before the other libraries start
        one, latency_failure = latency(bench, bench.sizes.latency_calls), ""
    except Exception as exc:
        one, latency_failure = {}, "1 task alone: " + failure(exc)
    rows += bench.others(
        "tiny_tasks",
        lambda s: bench.blocking(lambda: s.map(double, items)),
        equal,
        libraries=peers.SMALL_TASKS,
    )
    by_name = {row.contender: row for row in rows}
    for row in rows:
        median = row.median_s
        if row.status != "ok" or median is None:
            continue
        row.figures["us_per_task"] = us = median / n * 1e6
        notes = [f"{us:.1f} µs/task"]
        if loop_cpu.get(row.contender):
            row.figures["loop_cpu_us_per_call"] = cpu = _per_call_us(loop_cpu[row.contender], n)
            notes.append(f"loop thread {cpu:.1f} µs CPU per call")
        if row.contender in one:
            row.figures["latency_us"] = one[row.contender]
            notes.append(f"1 task alone {one[row.contender]:.0f} µs")
        row.note = "; ".join(notes)
    executor = by_name.get("run_in_executor")
    main = by_name.get("aiopar")
    if main and executor and main.median_s and executor.median_s and main.status == "ok":
        main.figures["vs_run_in_executor"] = main.median_s / executor.median_s
        main.note += f"; ×{main.figures['vs_run_in_executor']:.2f} of run_in_executor's time"
    if main and latency_failure:
        main.note = "; ".join(filter(None, (main.note, latency_failure)))
    return rows
