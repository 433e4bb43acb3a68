"""The Dask cluster of the cluster workloads (``dask_dag``, ``dask_chunks``) and the
clients the bench holds on it.

::

    python -m aiopar bench --cluster ADDRESS        python -m aiopar bench --only dask_dag
                 │                                                │
                 │                     a LocalCluster started for the run: one scheduler
                 │                     and one single-threaded worker process per core
                 │                     (the cluster's own threads and processes)
                 └───────────────┬────────────────────────────────┘
                                 ▼
    ClusterSession, on the bench's event loop (aiopar.bench.runner.Bench.runner):
      ├─ client: an asynchronous distributed.Client, for the hand-written "dask futures" rows
      └─ pool:   aiopar.Pool(cluster=address), with a client of its own, for the aiopar
                 rows (opened in the main thread; its client runs a loop of its own)

Everything here blocks the calling thread (the bench's main thread): the async parts
run to completion on the bench's :class:`asyncio.Runner`, whose loop is idle between
runs. ``distributed`` is imported only here, when a cluster workload runs.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiopar

from .rows import Result

if TYPE_CHECKING:  # the runner imports this module
    from .runner import Bench, Entry

__all__ = [
    "DASK_FUTURES",
    "ClusterSession",
    "installed",
    "measure_on_cluster",
    "versus",
]

DASK_FUTURES = "dask futures"
"""The name of the hand-written rows: plain ``client.submit`` / ``client.map`` futures."""

_ROWS = ("sequential", "aiopar", DASK_FUTURES)
_WAIT_FOR_WORKERS_S = 60.0


def installed() -> bool:
    """Whether ``distributed`` can be imported (asked without importing it)."""
    try:
        return importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):
        return False


class ClusterSession:
    """A Dask cluster (given by address, or a LocalCluster started here), the bench's
    asynchronous client on it, and an aiopar pool on it.

    Args:
        runner: the bench's event loop runner; the client lives on its loop.
        address: a scheduler address (``tcp://host:8786``); None starts a LocalCluster of
            ``workers`` single-threaded worker processes, closed by :meth:`close`.
        workers: the LocalCluster's worker processes (ignored with an address).

    Raises:
        OSError, TimeoutError: when the scheduler cannot be reached or has no worker
            within a minute.
    """

    def __init__(self, runner: asyncio.Runner, address: str | None, workers: int) -> None:
        distributed = importlib.import_module("distributed")
        self._runner = runner
        self._local: Any = None
        if address is None:
            self._local = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: 8787 may be taken
            )
            address = str(self._local.scheduler_address)
        self.address: str = address
        self.version = str(distributed.__version__)
        self.described = (
            "a LocalCluster started for the run" if self._local is not None else address
        )
        self._pool: aiopar.Pool | None = None
        self._pool_failure: Exception | None = None
        try:
            self.client: Any = runner.run(self._connect(distributed))
            self.threads: int = runner.run(self._threads())
        except BaseException:
            self._close_local()
            raise
        self._open_pool()

    async def _connect(self, distributed: Any) -> Any:
        client = await distributed.Client(self.address, asynchronous=True)
        try:
            await client.wait_for_workers(1, timeout=_WAIT_FOR_WORKERS_S)
        except BaseException:
            await client.close()
            raise
        return client

    def _open_pool(self) -> None:
        """Open ``aiopar.Pool(cluster=address)`` (it connects a client of its own), in
        this thread; a failure is kept for :meth:`pool` to raise."""
        try:
            pool = aiopar.Pool(cluster=self.address)
            pool.open()
        except Exception as exc:
            self._pool_failure = exc
        else:
            self._pool = pool

    def pool(self) -> aiopar.Pool:
        """The aiopar pool on this cluster, opened with the session.

        Raises:
            Exception: what opening it raised.
        """
        if self._pool is None:
            raise self._pool_failure or RuntimeError("the cluster session is closed")
        return self._pool

    async def _threads(self) -> int:
        nthreads: dict[str, int] = await self.client.nthreads()
        return sum(nthreads.values())

    def close(self) -> None:
        """Close the aiopar pool, the client and the LocalCluster if one was started."""
        try:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                pool.close()
            self._runner.run(self.client.close())
        finally:
            self._close_local()

    def _close_local(self) -> None:
        local, self._local = self._local, None
        if local is not None:
            local.close()


def versus(rows: list[Result], name: str, baseline: str) -> float | None:
    """Row ``name``'s time over row ``baseline``'s: the median over rounds of the ratio of
    runs timed in the same round, or the ratio of the medians when the rounds do not
    pair up; None when either row has no runs."""
    by_name = {row.contender: row for row in rows}
    row, base = by_name.get(name), by_name.get(baseline)
    if row is None or base is None or not row.runs_s or not base.runs_s:
        return None
    paired = row.in_rounds and base.in_rounds and len(row.runs_s) == len(base.runs_s)
    if paired and all(t > 0 for t in base.runs_s):
        return statistics.median(t / b for t, b in zip(row.runs_s, base.runs_s, strict=True))
    return statistics.median(row.runs_s) / statistics.median(base.runs_s)


def measure_on_cluster(
    bench: Bench,
    workload: str,
    entries: Callable[[ClusterSession], list[Entry]],
    same: Callable[[Any, Any], bool],
) -> list[Result]:
    """The rows of a cluster workload: ``entries(session)`` measured on the bench's
    cluster, then the aiopar row's time over the hand-written one's as its figure
    ``vs_dask_futures`` (and in its note). When the cluster cannot be started or
    reached, every row fails with the reason.

    The first entry (the sequential one, whose answer is the reference) is timed in
    rounds of its own, before the rounds of the others. A run right after the
    sequential one can be slower (3-8 % on the bench's VM, see docs/benchmarks.md),
    and in rounds of three rows in turning order that place always falls to the same
    row (the one listed after it, two rounds in three). Apart, the aiopar and dask
    futures rows take turns after each other, and the bar compares only them.
    """
    from .runner import failure  # the runner imports this module

    try:
        session = bench.cluster()
    except Exception as exc:
        note = "no cluster: " + failure(exc)
        return [Result(workload, name, status="failed", note=note) for name in _ROWS]
    reference, *others = entries(session)
    rows = bench.measure(workload, [reference], same)
    for row in rows:  # not in the others' rounds: no runs to pair with
        row.in_rounds = False
    rows += bench.measure(workload, others, same, reference=False)
    ratio = versus(rows, "aiopar", DASK_FUTURES)
    main = next((row for row in rows if row.contender == "aiopar"), None)
    if ratio is not None and main is not None and main.status == "ok":
        main.figures["vs_dask_futures"] = ratio
        main.note = f"×{ratio:.2f} of {DASK_FUTURES}' time (median over rounds)"
    for row in rows:
        if row.status == "ok" and row.contender != "sequential":
            row.note = "; ".join(filter(None, (row.note, f"on {session.described}")))
    return rows
