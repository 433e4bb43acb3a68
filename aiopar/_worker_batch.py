"""What a worker does with a batch of jobs (see ``_batching.py``): runs them in turn.

Runs in the worker's main thread (a batch of coroutine jobs: on the worker's loop, see
``_worker_loop.py``). Imports nothing heavy (it is imported by every
worker at start-up, with ``_worker.py``).

Each job's outcome is pickled on its own, here: a result that cannot be pickled fails
that job alone (with the error a single job gets), not the batch. Each job's slot
holds this worker's pid while the job runs (``_worker.run_job`` writes it) and is
marked done once it finished, so that after a crash the parent knows which job of the
batch was running.
"""

from __future__ import annotations

import os
import pickle
import time
from concurrent.futures.process import _ExceptionWithTraceback
from types import TracebackType
from typing import Any, cast

from . import _worker, _worker_loop
from ._carried import Carried, _as_exception
from ._envelopes import _PICKLE_PROTOCOL
from ._worker_coroutines import coroutine

__all__ = ["run_batch", "run_coroutine_batch"]


def run_batch(entries: list[tuple[int, bytes, str, Any, Any]]) -> list[bytes]:
    """Run each ``(slot, func_blob, kind, payload, shm)`` as :func:`_worker.run_job`
    does; return, for each, the pickle of ``(True, result)`` or ``(False, exception)``,
    the exception as ``concurrent.futures`` sends one (with the worker's traceback).

    A batch of coroutine jobs (``_batching.py`` never mixes them with others) runs all
    at once: see :func:`run_coroutine_batch`."""
    if entries and _on_loop(entries[0][1]):
        return run_coroutine_batch(entries)
    outcomes = []
    pid = os.getpid()
    for slot, func_blob, kind, payload, shm in entries:
        try:
            value = _worker.run_job(slot, func_blob, kind, payload, shm)
            data = pickle.dumps((True, value), protocol=_PICKLE_PROTOCOL)
        except BaseException as exc:
            data = _failure(exc)
        slots = _worker._slots
        if slots is not None and slot >= 0 and slots[slot] == pid:
            slots[slot] = _worker.SLOT_DONE
        outcomes.append(data)
    return outcomes


def _on_loop(func_blob: bytes) -> bool:
    try:
        return type(_worker._load_func(func_blob)) is _worker_loop.OnLoop
    except BaseException:  # fails again, as that job's own failure, in run_job
        return False


def _failure(exc: BaseException) -> bytes:
    """``(False, exc)`` pickled as ``concurrent.futures`` sends a job's exception."""
    try:
        return pickle.dumps((False, _with_traceback(exc)), protocol=_PICKLE_PROTOCOL)
    except Exception as error:  # as concurrent.futures does when it will not pickle
        return pickle.dumps((False, _with_traceback(error)), protocol=_PICKLE_PROTOCOL)


def _with_traceback(exc: BaseException) -> object:
    # A caught exception has its traceback (the type says it may lack one).
    return _ExceptionWithTraceback(exc, cast(TracebackType, exc.__traceback__))


def run_coroutine_batch(entries: list[tuple[int, bytes, str, Any, Any]]) -> list[bytes]:
    """Run a batch of coroutine jobs (tasks of ``async def`` functions) all at once on
    the worker's loop (see ``_worker_loop.py``); return their outcomes as
    :func:`run_batch` does. Each job's slot is marked done as soon as it ends, so that a
    crash is pinned on the jobs still running."""
    pid = os.getpid()
    slots = _worker._slots
    outcomes: list[bytes | None] = [None] * len(entries)
    started: list[tuple[int, Any, Any]] = []  # (index, func, shm) of the jobs that run
    coroutines = []
    for index, (slot, func_blob, kind, payload, shm) in enumerate(entries):
        try:
            data = _worker.prepare(slot, payload, shm)
            if data is _worker._SKIP:
                outcomes[index] = pickle.dumps((True, (0.0, _worker.SKIPPED)))
                continue
            func = _worker._load_func(func_blob)
            job = coroutine(_worker._load_func(func.blob), func.concurrency, kind, data)
            coroutines.append((slot, job))
            started.append((index, func, shm))
        except BaseException as exc:
            outcomes[index] = _failure(exc)

    def done(slot: int) -> None:
        if slots is not None and slot >= 0 and slots[slot] == pid:
            slots[slot] = _worker.SLOT_DONE

    begin = time.perf_counter()
    values = _worker_loop.loop_thread().run_many(coroutines, slots, done) if coroutines else []
    elapsed = time.perf_counter() - begin
    for (index, func, shm), value in zip(started, values, strict=True):
        if isinstance(value, _worker_loop.CancelledByCaller):
            outcomes[index] = pickle.dumps((True, (0.0, _worker.SKIPPED)))
        elif isinstance(value, BaseException):
            carried = Carried(_as_exception(value)).with_traceback(value.__traceback__)
            outcomes[index] = _failure(carried)
        else:
            try:
                packed = (elapsed, _worker.pack(func, value, shm))
                outcomes[index] = pickle.dumps((True, packed), protocol=_PICKLE_PROTOCOL)
            except BaseException as exc:
                outcomes[index] = _failure(exc)
    return [outcome for outcome in outcomes if outcome is not None]
