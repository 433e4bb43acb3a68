"""Other libraries measured beside aiopar when importable: joblib, Ray, Dask, mpire and
aiomultiprocess.

Each library is wrapped in a small session class, started for one workload (in the
calling thread), warmed, measured and stopped after it by the runner
(:meth:`aiopar.bench.runner.Bench.others`). Every method blocks the calling thread.
The heavy imports happen inside the sessions, and only when the library is installed;
:func:`installed` asks without importing.

A session offers what its library has:

* ``map(func, items)``: every library, one task per item (joblib batches them itself);
* ``submit(func, *args)`` and ``get(handles)``: the libraries with task references
  (Ray, Dask), whose ``args`` may be handles that ``submit`` returned; the task starts
  when they are done.

aiomultiprocess runs coroutine functions on an event loop of its own; its session
drives a private :class:`asyncio.Runner` in the calling thread (the bench's own loop is
not running while a peer's row is timed) and sends each task as :func:`acall`.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "GRAPHS",
    "Aiomultiprocess",
    "MAPS",
    "SESSIONS",
    "SMALL_TASKS",
    "THIRD_PARTY",
    "acall",
    "call",
    "installed",
    "sleep_for",
]

THIRD_PARTY = ("joblib", "ray", "dask", "mpire", "aiomultiprocess")
"""Other libraries measured when importable."""

MAPS = ("joblib", "ray", "dask", "mpire")
"""The libraries measured on the array and pure-Python maps (vec, vec_heavy, py_tasks)."""

SMALL_TASKS = ("aiomultiprocess", "ray", "dask")
"""The libraries measured on the tiny tasks (tiny_tasks, tiny_map)."""

GRAPHS = ("ray", "dask")
"""The libraries with task references (``submit`` and ``get``)."""


def sleep_for(seconds: float) -> float:
    """Sleep (blocking), then return ``seconds``: starts and warms workers."""
    time.sleep(seconds)
    return seconds


def call(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)``: lets Ray run any picklable callable with one remote function."""
    return func(*args)


async def acall(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` as a coroutine: what aiomultiprocess runs for any plain function."""
    return func(*args)


class _Joblib:
    def __init__(self, workers: int) -> None:
        joblib = importlib.import_module("joblib")
        self._parallel = joblib.Parallel(n_jobs=workers)
        self._delayed = joblib.delayed

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._parallel(self._delayed(func)(item) for item in items))

    def close(self) -> None:
        loky = importlib.import_module("joblib.externals.loky")
        loky.get_reusable_executor().shutdown(wait=True)


class _Ray:
    def __init__(self, workers: int) -> None:
        self._ray = importlib.import_module("ray")
        self._ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            ignore_reinit_error=True,
        )
        self._call = self._ray.remote(call)

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._ray.get([self._call.remote(func, item) for item in items]))

    def submit(self, func: Callable[..., Any], *args: Any) -> Any:
        return self._call.remote(func, *args)  # ObjectRefs among args: resolved by Ray

    def get(self, handles: Sequence[Any]) -> list[Any]:
        return list(self._ray.get(list(handles)))

    def close(self) -> None:
        self._ray.shutdown()


class _Dask:
    def __init__(self, workers: int) -> None:
        distributed = importlib.import_module("dask.distributed")
        self._cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self._client = distributed.Client(self._cluster)

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        args: Any = items
        if items and isinstance(items[0], np.ndarray):
            args = self._client.scatter(list(items), hash=False)  # dask: scatter big data
        return list(self._client.gather(self._client.map(func, args, pure=False)))

    def submit(self, func: Callable[..., Any], *args: Any) -> Any:
        return self._client.submit(func, *args, pure=False)  # futures among args: resolved

    def get(self, handles: Sequence[Any]) -> list[Any]:
        return list(self._client.gather(list(handles)))

    def close(self) -> None:
        self._client.close()
        self._cluster.close()


class _Mpire:
    def __init__(self, workers: int) -> None:
        mpire = importlib.import_module("mpire")
        self._pool = mpire.WorkerPool(n_jobs=workers, start_method="forkserver", keep_alive=True)

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        # One-element tuples: mpire unpacks tuples into arguments and would cut arrays.
        args = [(item,) for item in items]
        return list(self._pool.map(func, args, concatenate_numpy_output=False))

    def close(self) -> None:
        self._pool.terminate()


class Aiomultiprocess:
    """An aiomultiprocess ``Pool`` of ``workers`` processes on an event loop of its own
    (an :class:`asyncio.Runner`, made with ``loop_factory``), driven from plain code:
    each call blocks the calling thread while the pool works.

    ``childconcurrency`` and ``loop_initializer`` are the Pool's own options (None:
    its defaults).
    """

    def __init__(
        self,
        workers: int,
        *,
        childconcurrency: int | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        aiomultiprocess = importlib.import_module("aiomultiprocess")
        self._runner = asyncio.Runner(loop_factory=loop_factory)
        options: dict[str, Any] = {"processes": workers}
        if childconcurrency is not None:
            options["childconcurrency"] = childconcurrency
        if loop_factory is not None:
            options["loop_initializer"] = loop_factory

        async def start() -> Any:
            return aiomultiprocess.Pool(**options)  # needs a running loop, bound to it

        try:
            self._pool = self._runner.run(start())
        except BaseException:
            self._runner.close()
            raise

    def map(self, func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[func(item) for item in items]`` in the pool, for a plain ``func``."""
        return self.map_async(acall, [(func, item) for item in items], star=True)

    def map_async(
        self, func: Callable[..., Awaitable[Any]], items: Sequence[Any], *, star: bool = False
    ) -> list[Any]:
        """``[await func(item) for item in items]`` in the pool (``func(*item)`` with
        ``star``)."""

        async def each() -> list[Any]:
            pool = self._pool
            return list(await (pool.starmap(func, items) if star else pool.map(func, items)))

        return self._runner.run(each())

    def close(self) -> None:
        async def stop() -> None:
            self._pool.terminate()
            await self._pool.join()

        try:
            self._runner.run(stop())
        finally:
            self._runner.close()
            stop_aiomultiprocess_manager()


def stop_aiomultiprocess_manager() -> None:
    """Stop the manager process through which aiomultiprocess's pools give their workers
    their state: it starts one on first use and keeps it for the interpreter's life."""
    core = importlib.import_module("aiomultiprocess.core")
    manager = getattr(core, "_manager", None)
    if manager is not None:
        manager.shutdown()
        vars(core)["_manager"] = None


SESSIONS: dict[str, tuple[str, Callable[[int], Any]]] = {
    "joblib": ("joblib", _Joblib),
    "ray": ("ray", _Ray),
    "dask": ("distributed", _Dask),
    "mpire": ("mpire", _Mpire),
    "aiomultiprocess": ("aiomultiprocess", Aiomultiprocess),
}
"""Library name: (the module that must be importable, the session class)."""


SKIPPED = "other libraries run at the full sizes, or with --peers yes"
"""The note of a peer's row that was not measured (``--quick``, ``--peers auto``)."""


def installed(name: str) -> bool:
    """Whether the library ``name`` (a key of :data:`SESSIONS`) can be imported."""
    module = SESSIONS[name][0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
