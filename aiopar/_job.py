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
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import _packing, _segments, _worker
from ._future import JobFuture

__all__ = ["Job", "Outcome", "Settled"]

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
    segments: list[_segments.Segment] = field(default_factory=list)
    # Set by _load_outcome() once the executor's future is done: the result, rebuilt
    # from its pickle, or the error rebuilding it raised.
    value: Any = None
    load_error: BaseException | None = None


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
