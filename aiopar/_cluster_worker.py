"""What runs inside a Dask worker for a pool on a cluster (see ``_cluster.py``).

:func:`run` is the function of every Dask task a pool submits: it runs in one of the
worker's task threads, calls ``_worker.run_job`` as a local worker process would, and
returns the plain result, which Dask keeps in the worker's memory and moves to the
workers of the tasks that depend on it. A task's exception leaves as a
``_carried.Carried`` (its type, message and the worker's traceback, ``__cause__`` chain
included), rebuilt in the caller by ``_cluster.py``.

The worker plugin that runs a pool's ``initializer`` in each worker
(``_cluster_plugin.py``) keeps its result in :data:`states`; :func:`run` makes it that
pool's ``aiopar.worker_state()`` during its tasks. :func:`stop` runs on each worker's
event loop when a caller abandons tasks: it keeps them from starting and waits for
those already running (or, for ``cancel="kill"``, ends the worker that runs one).
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing
import os
import pickle
import signal
import threading
from typing import Any

from . import _worker
from ._envelopes import Portable

__all__ = ["Linked", "Payload", "Skipped", "init_errors", "run", "states", "stop"]

# The state made by each pool's initializer in this worker process, by pool token, and
# the errors of those that failed (see _cluster_plugin.py).
states: dict[str, Any] = {}
init_errors: dict[str, BaseException] = {}
# Keys of tasks their pool cancelled: one that starts anyway returns at once (a bounded
# memory of the latest ones; keys are unique).
_cancelled: set[str] = set()
_cancelled_order: collections.deque[str] = collections.deque()
_cancelled_lock = threading.Lock()
_CANCELLED_KEPT = 4096
# Task states in which a task runs, or may still run, in a Dask worker.
_WILL_RUN = frozenset(
    {"executing", "long-running", "cancelled", "resumed", "ready", "constrained", "waiting"}
)
_RUNNING = frozenset({"executing", "long-running", "cancelled", "resumed"})


class Linked:
    """A job's payload that holds the results of other tasks: pickled in the caller with
    each result's place marked (``_cluster.py``); the results themselves reach the Dask
    task as its further arguments, moved there by Dask from the workers that hold them."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Payload:
    """A job's payload as one opaque argument of its Dask task: Dask pickles it whole
    (numpy buffers out of band) instead of walking every item of a chunk for Dask
    futures, a cost of seconds per million items on the caller's thread."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self) -> Any:
        return (Payload, (self.value,))


class _LinkUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, results: tuple[Any, ...]) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self._results = results

    def persistent_load(self, pid: Any) -> Any:
        return self._results[pid]


def _key() -> str | None:
    """The Dask key of the task this thread runs."""
    try:
        from distributed import get_worker

        key = get_worker().get_current_task()
    except (ImportError, ValueError):  # not in a Dask worker's task
        return None
    return key if isinstance(key, str) else None


def _enter_worker() -> None:
    """Make this process count as a worker (see :func:`run`) if it is a Dask worker
    process of its own: a daemonic one, as the nanny starts them, which could not
    start worker processes anyway. A cluster whose workers are threads of the caller's
    process (``LocalCluster(processes=False)``) leaves it a caller: calls there use the
    caller's default pool."""
    if not _worker.in_worker() and multiprocessing.current_process().daemon:
        _worker._state = None


class Skipped:
    """Returned by a task whose pool cancelled it before it started."""

    def __reduce__(self) -> Any:
        return (Skipped, ())


def run(token: str, func_blob: bytes, kind: str, payload: Any, timed: bool, *results: Any) -> Any:
    """Run one job of pool ``token``; return its result (with ``timed``: ``(seconds
    spent computing, result)``, for the chunk sizing of maps).

    ``results``: the results of the tasks this one depends on, for a :class:`Linked`
    payload.
    """
    key = _key()
    if key is not None:
        with _cancelled_lock:
            if key in _cancelled:
                return Skipped()
    if token in init_errors:
        raise _worker.initializer_failed(init_errors[token])
    if isinstance(payload, Payload):
        payload = payload.value
    elif isinstance(payload, Linked):
        try:
            payload = _LinkUnpickler(payload.data, results).load()
        except Exception as exc:
            raise RuntimeError(
                "the worker could not load this job's arguments "
                f"({type(exc).__name__}: {exc}); is every class they use importable in "
                "the Dask workers (defined in a module installed there, not only in the "
                "caller)?"
            ) from exc
    # aiopar's calls made by a task here run in this process, in order, as in a local
    # worker (see _default.py), instead of starting processes of their own.
    _enter_worker()
    previous = getattr(_worker.inline_state, "value", _MISSING)
    _worker.inline_state.value = states.get(token)
    try:
        elapsed, value = _worker.run_job(-1, func_blob, kind, payload)
    finally:
        if previous is _MISSING:
            _worker.inline_state.__dict__.pop("value", None)
        else:
            _worker.inline_state.value = previous
    value = value.obj if isinstance(value, Portable) else value
    return (elapsed, value) if timed else value


_MISSING: Any = object()


async def stop(keys: list[str], kill: bool, dask_worker: Any = None) -> int:
    """In a Dask worker (through ``Client.run``): keep the tasks ``keys`` from starting
    here, and return once none of them runs here any more (``kill=False``), or end this
    worker process at once if one of them runs (``kill=True``: its nanny, if any, starts
    a new one, and Dask treats the tasks the worker held as those of a dead worker).
    Return how many of them ran here."""
    with _cancelled_lock:
        for key in keys:
            if key not in _cancelled:
                _cancelled.add(key)
                _cancelled_order.append(key)
        while len(_cancelled_order) > _CANCELLED_KEPT:
            _cancelled.discard(_cancelled_order.popleft())
    wanted = set(keys)
    ran = 0
    while True:
        tasks = dask_worker.state.tasks if dask_worker is not None else {}
        states = [tasks[key].state for key in wanted if key in tasks]
        running = sum(state in _RUNNING for state in states)
        ran = max(ran, running)
        if kill and running:
            os.kill(os.getpid(), signal.SIGKILL)
        if not any(state in _WILL_RUN for state in states):
            return ran
        await asyncio.sleep(0.01)
