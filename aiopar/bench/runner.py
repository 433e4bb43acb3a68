"""The bench's runner: owns the pools, runs each contender, times the rounds.

How the contenders of one workload are measured (:meth:`Bench.measure`)::

    each contender once, untimed ──► its answer checked ──► --repeat rounds, every contender
      (warm-up: its workers import     against the           once per round (interleaved, so
       the function, pages get          sequential one        load from elsewhere hits all
       mapped)                          (a wrong answer       alike) ──► median seconds,
                                        fails the row)        speedup = median over rounds
                                                              of t_seq / t_x

The order of the contenders turns by one place from round to round. Other libraries
(:mod:`aiopar.bench.peers`) are measured after the rounds, each started for its own runs
and stopped after them (:meth:`Bench.others`).

Everything here blocks the calling thread (the main thread of ``python -m aiopar
bench``); async contenders run on the runner's private event loop, an
:class:`asyncio.Runner`, so that libraries with event loops of their own (Dask) are
called from plain synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

import aiopar

from . import peers
from .cluster import ClusterSession
from .lag import Ticker, lag_stats
from .memory import PeakMemory
from .rows import Result, Sample
from .sizes import Sizes

__all__ = ["Bench", "Entry", "close_enough", "equal", "failure"]

FloatArray = npt.NDArray[np.float64]

Entry = tuple[str, Callable[[], Sample]]
"""A contender's name and a callable that runs it once (blocking) and returns a Sample."""


def close_enough(value: Any, expected: Any) -> bool:
    """Whether two answers (arrays, or sequences of arrays) agree to ``rtol=1e-9``."""
    got, want = np.asarray(value), np.asarray(expected)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=1e-9, atol=1e-12))


def equal(value: Any, expected: Any) -> bool:
    """Whether two answers are equal as lists."""
    return list(value) == list(expected)


def failure(exc: BaseException) -> str:
    """The first line of an exception, for a row's notes."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:160]


class Bench:
    """Owns the pools of one benchmark run and measures each workload's contenders.

    Every method blocks until its runs are done; see the module docstring.
    """

    def __init__(
        self,
        sizes: Sizes,
        repeat: int,
        *,
        loop: str = "asyncio",
        progress: Callable[[str], None] = lambda line: None,
        cluster: str | None = None,
        peers: bool = True,
    ) -> None:
        self.sizes = sizes
        self.peers = peers
        self.cluster_address = cluster
        self._cluster: ClusterSession | None = None
        self._cluster_failure: Exception | None = None
        self.repeat = repeat
        self.memory = PeakMemory()
        self._progress = progress
        factory: Callable[[], asyncio.AbstractEventLoop] | None = None
        if loop == "uvloop":
            factory = importlib.import_module("uvloop").new_event_loop
        self.runner = asyncio.Runner(loop_factory=factory)
        self.pool = aiopar.Pool()
        self.workers = self.pool.workers
        self.pool.open()
        self.executor = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("forkserver")
        )
        self._arrays: dict[int, FloatArray] = {}
        self._expected: Any = None

    def warm(self) -> float:
        """Start every worker of the pool and of the executor; return the seconds taken."""
        start = time.perf_counter()

        async def both() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                self.pool.gather(
                    *(self.pool.submit(peers.sleep_for, 0.05) for _ in range(self.workers))
                ),
                *(
                    loop.run_in_executor(self.executor, peers.sleep_for, 0.05)
                    for _ in range(self.workers)
                ),
            )

        self.runner.run(both())
        return time.perf_counter() - start

    def cluster(self) -> ClusterSession:
        """The Dask cluster of the cluster workloads: the one at ``cluster`` (the
        address given), or a LocalCluster of one single-threaded worker process per core,
        started on the first call and closed by :meth:`close`. Blocks.

        Raises:
            ImportError: when ``distributed`` is not installed.
            OSError, TimeoutError: when the scheduler cannot be reached or has no worker.
        """
        if self._cluster_failure is not None:  # one attempt per run: the same error again
            raise self._cluster_failure
        if self._cluster is None:
            try:
                self._cluster = ClusterSession(self.runner, self.cluster_address, self.workers)
            except Exception as exc:
                self._cluster_failure = exc
                raise
        return self._cluster

    @property
    def started_cluster(self) -> ClusterSession | None:
        """The cluster :meth:`cluster` started or reached, if it did; None otherwise."""
        return self._cluster

    def close(self) -> None:
        """Stop the workers, the cluster's clients (and the LocalCluster the bench
        started) and the event loop. Blocks."""
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()
        self.pool.close()
        self.executor.shutdown(wait=True)
        self.runner.close()

    # ── running contenders ─────────────────────────────────────────────────────────

    def blocking(self, work: Callable[[], Any]) -> Callable[[], Sample]:
        """A contender that runs ``work()`` in this thread, timed."""

        def run() -> Sample:
            start = time.perf_counter()
            value = work()
            return Sample(time.perf_counter() - start, value)

        return run

    def awaiting(
        self, work: Callable[[], Awaitable[Any]], ticker: bool = False
    ) -> Callable[[], Sample]:
        """A contender that awaits ``work()`` on the runner's event loop, timed; with
        ``ticker``, a :class:`~aiopar.bench.lag.Ticker` runs beside it."""

        async def timed() -> Sample:
            tick = Ticker(self.sizes.tick_s)
            task = asyncio.ensure_future(tick.run()) if ticker else None
            if task:
                await asyncio.sleep(5 * self.sizes.tick_s)  # let it tick before timing
                tick.lags.clear()
            start = time.perf_counter()
            value = await work()
            seconds = time.perf_counter() - start
            if task:
                tick.finish()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            return Sample(seconds, value, tick.lags if task else None)

        return lambda: self.runner.run(timed())

    def measure(
        self,
        workload: str,
        entries: Sequence[Entry],
        same: Callable[[Any, Any], bool],
        *,
        reference: bool = True,
        grouped: bool = False,
        rounds: int | None = None,
    ) -> list[Result]:
        """Run each entry once untimed, then ``rounds`` (default ``repeat``) rounds of one
        timed run each.

        The untimed run warms the workers and checks the answer: with ``reference``,
        the first entry's answer is the one the others must match (``same``). Rounds
        interleave the contenders, so a burst of load elsewhere on the machine hits
        them all alike, in an order that turns by one place from round to round. The
        rounds start after a pause (``Sizes.settle_s``), so that the memory earlier work
        freed does not disturb them. ``grouped``: each contender's runs back to back
        instead, each group after such a pause, so that what one contender freed does
        not disturb the next one's measurement (loop_lag). Never raises: a failure
        becomes the row's status.
        """
        results = {name: Result(workload, name, in_rounds=not grouped) for name, _ in entries}
        lags: dict[str, list[float]] = {name: [] for name, _ in entries}
        live: list[Entry] = []
        if reference:
            self._expected = None
        for index, (name, run) in enumerate(entries):
            result = results[name]
            try:
                value = run().value
            except Exception as exc:
                result.status, result.note = "failed", failure(exc)
                continue
            if reference and index == 0:
                self._expected = value
            elif self._expected is None or not same(value, self._expected):
                result.status = "wrong result"
                result.note = "its answer differs from the sequential one"
                continue
            del value
            live.append((name, run))
        rounds = self.repeat if rounds is None else rounds
        if grouped:  # each contender's runs back to back, after a pause
            order = [entry for entry in live for _ in range(rounds)]
        else:  # rounds: every contender once per round, after one pause
            # The order turns by one place each round: a run right after another one
            # can be slower (on this VM the one right after the sequential run was 3-8 %
            # slower), and no contender should always take that place.
            order = [
                live[(start + offset) % len(live)]
                for start in range(rounds)
                for offset in range(len(live))
            ]
            time.sleep(self.sizes.settle_s)
        previous = None
        for name, run in order:
            if (name, run) not in live:
                continue  # failed in an earlier run
            result = results[name]
            if grouped and name != previous:
                time.sleep(self.sizes.settle_s)
            previous = name
            try:
                self.memory.start()
                sample = run()
                peak = self.memory.stop() if sample.peak_mib is None else sample.peak_mib
            except Exception as exc:
                result.status, result.note = "failed", failure(exc)
                result.runs_s.clear()
                live.remove((name, run))
                continue
            result.runs_s.append(sample.seconds)
            result.peak_mib = max(peak, result.peak_mib or 0.0)
            result.note = sample.note or result.note
            lags[name].extend(sample.lags or ())
            del sample
        for name, result in results.items():
            if result.status == "ok" and lags[name]:
                result.lag_ms = stats = lag_stats(lags[name])
                result.note = (
                    f"lag p50 {stats['p50']:.2f} / p99 {stats['p99']:.2f} /"
                    f" max {stats['max']:.1f} ms ({int(stats['ticks'])} ticks)"
                )
            median = result.median_s
            self._progress(
                f"  {workload:<10} {name:<16} "
                + (f"{median:8.3f} s" if median is not None else f"{result.status:>10}")
                + (f"  {result.note}" if result.note else "")
            )
        return list(results.values())

    def others(
        self,
        workload: str,
        use: Callable[[Any], Callable[[], Sample]],
        same: Callable[[Any, Any], bool],
        rounds: int | None = None,
        *,
        libraries: Sequence[str] = peers.MAPS,
    ) -> list[Result]:
        """Rows for other libraries (default: :data:`~aiopar.bench.peers.MAPS`):
        each started, measured with ``use(session)``, then stopped; "not installed" rows
        for the missing ones."""
        results = []
        for name in libraries:
            if not peers.installed(name):
                results.append(Result(workload, name, status="not installed"))
                continue
            if not self.peers:
                results.append(Result(workload, name, status="skipped", note=peers.SKIPPED))
                continue
            try:
                session = peers.SESSIONS[name][1](self.workers)
            except Exception as exc:
                note = "could not start: " + failure(exc)
                results.append(Result(workload, name, status="failed", note=note))
                continue
            try:
                session.map(peers.sleep_for, [0.05] * self.workers)  # start and warm it
                rows = self.measure(
                    workload, [(name, use(session))], same, reference=False, rounds=rounds
                )
                for row in rows:  # timed after the others' rounds: no round to pair with
                    row.in_rounds = False
                results += rows
            except Exception as exc:
                results.append(Result(workload, name, status="failed", note=failure(exc)))
            finally:
                session.close()
        return results

    # ── helpers of the array workloads ─────────────────────────────────────────────

    def array(self, length: int) -> FloatArray:
        """A standard normal float64 array of ``length``, made once per run and length."""
        if length not in self._arrays:
            self._arrays[length] = np.random.default_rng(length).standard_normal(length)
        return self._arrays[length]

    async def by_hand(self, func: Callable[[Any], Any], data: FloatArray) -> FloatArray:
        """The hand-written way: one piece per worker through run_in_executor, joined here."""
        loop = asyncio.get_running_loop()
        pieces = np.array_split(data, self.workers)
        answers = await asyncio.gather(
            *(loop.run_in_executor(self.executor, func, piece) for piece in pieces)
        )
        return np.concatenate(answers)
