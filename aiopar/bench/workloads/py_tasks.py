"""Workload ``py_tasks``: many ~17 ms pure-Python tasks, beside the machine's ceiling.

Runs in the bench's main thread; :func:`py_work` runs in the workers, and in the plain
processes of :class:`BareProcesses` (:func:`bare_worker`), the ceiling row.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import statistics
from collections.abc import Sequence
from typing import Any

from ..report import AIOPAR_ROWS
from ..rows import Result, Workload, at_least
from ..runner import Bench, Entry, equal
from ..sizes import Sizes

__all__ = [
    "PY_TASKS_ROUNDS",
    "BareProcesses",
    "against_ceiling",
    "bare_worker",
    "py_work",
    "py_work_many",
    "run",
    "workload",
]

# py_tasks runs this many times --repeat rounds: its runs are short (about 4.6 s a round for
# all contenders) and its ratios the noisiest, each vCPU of a cloud machine changing speed
# by a third from one second to the next; the median of more rounds moves less.
PY_TASKS_ROUNDS = 3


def py_work(seed: int, iterations: int) -> int:
    """A pure-Python loop holding the GIL; 300,000 iterations take about 17 ms here."""
    total = seed
    for i in range(iterations):
        total = (total * 31 + i) % 1_000_003
    return total


def py_work_many(seeds: Sequence[int], iterations: int) -> list[int]:
    """``[py_work(seed, iterations) for seed in seeds]``: one hand-made chunk of tasks."""
    return [py_work(seed, iterations) for seed in seeds]


def bare_worker(conn: Any, counter: Any, lock: Any, tasks: int, iterations: int) -> None:
    """A process of :class:`BareProcesses`: on each go, pull task numbers until none are
    left and send back ``{number: py_work(number, iterations)}``; stop on None."""
    while conn.recv() is not None:
        done = {}
        while True:
            with lock:
                number = counter.value
                counter.value = number + 1
            if number >= tasks:
                break
            done[number] = py_work(number, iterations)
        conn.send(done)


class BareProcesses:
    """The py_tasks workload on worker processes with nothing around them: each pulls
    the next task number from a shared counter, so a faster CPU takes more tasks. No
    pool, no queue, no result path: what the machine itself gives that many processes
    at that moment, the ceiling any pool can reach."""

    def __init__(self, workers: int, tasks: int, iterations: int) -> None:
        self._workers = workers
        self._tasks = tasks
        self._iterations = iterations
        ctx = multiprocessing.get_context("forkserver")
        self._lock = ctx.Lock()
        self._counter = ctx.RawValue("q", 0)
        self._conns: list[Any] = []
        self._processes: list[Any] = []

    def _start(self) -> None:
        ctx = multiprocessing.get_context("forkserver")
        for _ in range(self._workers):
            ours, theirs = ctx.Pipe()
            process = ctx.Process(
                target=bare_worker,
                args=(theirs, self._counter, self._lock, self._tasks, self._iterations),
                daemon=True,
            )
            process.start()
            theirs.close()
            self._conns.append(ours)
            self._processes.append(process)

    def run(self) -> list[int]:
        """Compute all tasks once; blocks. The first run starts the processes (the
        bench's untimed run, where a failure to start becomes the row's status)."""
        if not self._processes:
            self._start()
        with self._lock:
            self._counter.value = 0
        for conn in self._conns:
            conn.send(True)
        done: dict[int, int] = {}
        for conn in self._conns:
            done.update(conn.recv())
        return [done[number] for number in range(self._tasks)]

    def close(self) -> None:
        """Stop the processes; blocks."""
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self._conns:
            conn.close()


def against_ceiling(rows: list[Result], ceiling: str) -> None:
    """Note on each pool row how fast it ran next to the ``ceiling`` row, round by round.

    The note reads "×0.97 of the ceiling's speed": the median over rounds of
    t_ceiling / t_row. Both ran seconds apart in each round, so this compares the
    pool with what the machine gave at that moment, much of the noise that moves the
    speedups of both taken out.
    """
    top = next((r for r in rows if r.contender == ceiling and r.status == "ok"), None)
    if top is None:
        return
    for row in rows:
        if (
            row.contender in (*AIOPAR_ROWS, "run_in_executor")
            and row.status == "ok"
            and row.in_rounds
            and len(row.runs_s) == len(top.runs_s)
            and all(t > 0 for t in row.runs_s)
        ):
            share = statistics.median(c / t for c, t in zip(top.runs_s, row.runs_s, strict=True))
            row.note = f"×{share:.2f} of the ceiling's speed (median over rounds)"


def workload(sizes: Sizes) -> Workload:
    """Title, description and bar of ``py_tasks`` at these sizes."""
    return Workload(
        "py_tasks",
        f"{sizes.tasks} tasks of ~17 ms pure Python",
        f"amap(py_work, range({sizes.tasks})); py_work loops {sizes.task_iterations:,}"
        " times holding the GIL",
        "≥ ×1.9",
        at_least(1.9),
    )


def run(bench: Bench) -> list[Result]:
    """Many ~17 ms pure-Python tasks: ``amap`` and ``submit`` against a plain loop."""
    iterations = bench.sizes.task_iterations
    work = functools.partial(py_work, iterations=iterations)
    seeds = list(range(bench.sizes.tasks))

    async def submitted() -> list[int]:
        refs = [bench.pool.submit(py_work, seed, iterations) for seed in seeds]
        return await bench.pool.gather(*refs)

    async def by_hand() -> list[int]:
        loop = asyncio.get_running_loop()
        w, n = bench.workers, len(seeds)
        pieces = [seeds[n * i // w : n * (i + 1) // w] for i in range(w)]
        answers = await asyncio.gather(
            *(loop.run_in_executor(bench.executor, py_work_many, p, iterations) for p in pieces)
        )
        return [value for answer in answers for value in answer]

    bare = BareProcesses(bench.workers, len(seeds), iterations)  # started on first run
    entries: list[Entry] = [
        ("sequential", bench.blocking(lambda: [work(seed) for seed in seeds])),
        ("aiopar", bench.awaiting(lambda: bench.pool.amap(work, seeds))),
        ("aiopar submit", bench.awaiting(submitted)),
        ("run_in_executor", bench.awaiting(by_hand)),
        ("bare processes", bench.blocking(bare.run)),
    ]
    rounds = PY_TASKS_ROUNDS * bench.repeat
    try:
        rows = bench.measure("py_tasks", entries, equal, rounds=rounds)
    finally:
        bare.close()
    for row in rows:
        if row.contender == "bare processes" and row.status == "ok":
            row.note = "the ceiling: no pool, each process pulls the next task"
        if row.contender == "sequential" and row.status == "ok":
            row.note = f"{len(row.runs_s)} rounds ({PY_TASKS_ROUNDS} × --repeat)"
    against_ceiling(rows, "bare processes")
    return rows + bench.others(
        "py_tasks", lambda s: bench.blocking(lambda: s.map(work, seeds)), equal, rounds=rounds
    )
