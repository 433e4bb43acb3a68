"""``Job``: one unit of work for a runner, and the small helpers that settle its future.

A job is made on the event-loop thread (by ``_maps``, ``_tasks``, ``_reduce``), handed
to a runner (``_runner.Runner``), and settled in whatever thread learns its outcome:
the executor's manager thread or the dispatcher thread for worker processes (see
``_dispatcher.py``), the event-loop thread for the inline runner. Its ``future`` is the
one thing the caller waits on.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import _packing, _segments, _worker
from ._future import JobFuture

__all__ = ["Job", "KeptFuture", "Link", "Outcome", "Settled", "release_segments"]

_job_ids = itertools.count(1)


@dataclass(eq=False, slots=True)
class Job:
    """One unit of work for a worker: a task, a chunk of a map, a reduction step."""

    func_blob: bytes
    kind: str
    payload: object
    label: str
    future: cf.Future[Any] = field(default_factory=JobFuture)
    elapsed: float = 0.0  # seconds the worker spent computing, for chunk sizing
    id: int = field(default_factory=lambda: next(_job_ids))
    retries: int | None = None  # runs again after a crash of its worker; None: the pool's
    alone: bool = False  # never sent in a batch (see _batching.py)
    plain: bool = False  # payload of plain values only: sent as is, not as an Outbound
    # > 0: a job of an async def function, run on the worker's event loop with at most
    # this many coroutines at once (see _worker_loop.py); 0: a plain function.
    concurrency: int = 0
    # Managed by the dispatcher thread only:
    slot: int = -1
    generation: int = -1
    attempts: int = 0
    exec_future: cf.Future[Any] | None = None
    cancel_requested: bool = False
    first_item: int = 0  # index of a chunk's first item among all items, for messages
    count: int = 0  # how many items a map chunk holds
    # Shared memory (see _shm.py, _packing.py): where the answer may be written, the name of this
    # launch's result segment, the arena segment lent for its result, and the arena
    # segments holding its arguments.
    destination: _packing.Destination | None = None
    result_segment: str | None = None
    loan: _segments.Segment | None = None
    # () until the job is first sent with arguments that may hold arrays (_feeding.py):
    # most small jobs never need a list of their own.
    segments: list[_segments.Segment] | tuple[()] = ()
    # Set by _load_outcome() once the executor's future is done: the result, rebuilt
    # from its pickle, or the error rebuilding it raised.
    value: Any = None
    load_error: BaseException | None = None
    # Where the result lives when it stays where it was computed (a cluster runner's
    # Dask future, see _cluster.py); None for the other runners.
    remote: Any = None
    linked: bool = False  # its payload holds Links to other jobs' results (_runner.Linking)


def release_segments(job: Job, arena: Any) -> None:
    """Give back to ``arena`` the segments that held ``job``'s arguments and the one lent
    for its result (unless the result claimed it: the arena skips those)."""
    held = list(job.segments)
    if job.loan is not None:
        held.append(job.loan)
        job.loan = None
    job.segments = ()
    arena.give_back(held)


class Link:
    """Stands for the result of ``job`` in the arguments of another job, for a runner
    that passes results between its jobs itself (``_runner.Linking``): the result goes
    from where it was computed to where it is needed, never through this process."""

    __slots__ = ("job",)

    def __init__(self, job: Job) -> None:
        self.job = job

    def __reduce__(self) -> Any:
        raise TypeError(f"the result of {self.job.label} can only be passed to a job of its pool")


class KeptFuture(cf.Future[Any]):
    """The future of a job whose result may stay where it was computed until someone
    wants it (a task on a cluster: its value in a Dask worker's memory).

    A runner that keeps results calls :meth:`keep` when the job has finished, instead of
    ``set_result``; the value is fetched on the first demand for it: a done-callback
    added (every wait in aiopar begins so), ``result()`` or ``exception()``. The future
    is done once the value is here, as any future. Runners that do not keep results
    settle it as a plain future.
    """

    def __init__(self) -> None:
        super().__init__()
        self._want_lock = threading.Lock()
        self._wanted = False
        self._kept = False
        self._fetch: Callable[[], None] | None = None

    def finished(self) -> bool:
        """Whether the job has finished: its value here, or kept where it ran."""
        return self._kept or self.done()

    def keep(self, fetch: Callable[[], None]) -> None:
        """The job finished where it ran; ``fetch()`` brings its value here (and settles
        this future), now if it is wanted already, else on the first demand."""
        with self._want_lock:
            self._kept = True
            if not self._wanted:
                self._fetch = fetch
                return
        fetch()

    def want(self) -> None:
        """Ask for the value: fetch it if it was kept, or as soon as it is."""
        with self._want_lock:
            if self._wanted:
                return
            self._wanted = True
            fetch, self._fetch = self._fetch, None
        if fetch is not None:
            fetch()

    def add_done_callback(self, fn: Callable[[cf.Future[Any]], object]) -> None:
        self.want()
        super().add_done_callback(fn)

    def result(self, timeout: float | None = None) -> Any:
        self.want()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self.want()
        return super().exception(timeout)


class Outcome(Protocol):
    """What is read of a finished job's executor future: a ``concurrent.futures.Future``,
    or for a job of a batch (see ``_batching.py``) its own :class:`Settled`."""

    def cancelled(self) -> bool: ...

    def exception(self) -> BaseException | None: ...

    def result(self) -> Any: ...


class Settled:
    """The outcome of one job of a batch: a finished future without the locks (it is
    made finished, and read by the thread that made it, then the dispatcher thread)."""

    __slots__ = ("_error", "_value")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value = value
        self._error = error

    def cancelled(self) -> bool:
        return False

    def exception(self) -> BaseException | None:
        return self._error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


@dataclass
class _Crash:
    pid: int
    exitcode: int | None


def _is_skipped(value: object) -> bool:
    return isinstance(value, str) and value == _worker.SKIPPED


def _cancel_error(job: Job, why: str = "") -> cf.CancelledError:
    return cf.CancelledError(f"{job.label} was cancelled" + (f": {why}" if why else ""))


def _set_exception(future: cf.Future[Any], exc: BaseException) -> None:
    if not future.done():
        try:
            future.set_exception(exc)
        except cf.InvalidStateError:  # cancelled meanwhile
            pass
