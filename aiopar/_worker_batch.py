"""What a worker does with a batch of jobs (see ``_batching.py``): runs them in turn.

Runs in the worker's main thread. Imports nothing heavy (it is imported by every
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
from concurrent.futures.process import _ExceptionWithTraceback
from types import TracebackType
from typing import Any, cast

from . import _worker
from ._envelopes import _PICKLE_PROTOCOL

__all__ = ["run_batch"]


def run_batch(entries: list[tuple[int, bytes, str, Any, Any]]) -> list[bytes]:
    """Run each ``(slot, func_blob, kind, payload, shm)`` as :func:`_worker.run_job`
    does; return, for each, the pickle of ``(True, result)`` or ``(False, exception)``,
    the exception as ``concurrent.futures`` sends one (with the worker's traceback)."""
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


def _failure(exc: BaseException) -> bytes:
    """``(False, exc)`` pickled as ``concurrent.futures`` sends a job's exception."""
    try:
        return pickle.dumps((False, _with_traceback(exc)), protocol=_PICKLE_PROTOCOL)
    except Exception as error:  # as concurrent.futures does when it will not pickle
        return pickle.dumps((False, _with_traceback(error)), protocol=_PICKLE_PROTOCOL)


def _with_traceback(exc: BaseException) -> object:
    # A caught exception has its traceback (the type says it may lack one).
    return _ExceptionWithTraceback(exc, cast(TracebackType, exc.__traceback__))
