"""Settling a launched job: its result, its exception, or its crash.

The executor's future of a job carries the worker's answer as pickles the executor does
not open (``_envelopes.Packed``, ``_carried.Carried``); :meth:`Settling._load_outcome`
rebuilds it in the thread that settles the job, so one that cannot be rebuilt here fails
its job alone instead of breaking the pool.

Threads: :meth:`Settling._load_outcome` and :meth:`Settling._settle_success` run in the
executor's manager thread (from the done-callback); everything else here (failures,
crashes, cancelled jobs, results in arena segments) in the dispatcher thread.
"""

from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import _carried, _envelopes, _segments, _shm
from ._dispatch_state import DispatchState
from ._job import (
    Job,
    Outcome,
    _cancel_error,
    _Crash,
    _is_skipped,
    _set_exception,
    release_segments,
)
from .errors import ResultLoadError

__all__ = ["Settling"]


class Settling(DispatchState):
    """Delivering each launched job's outcome to its future."""

    def _load_outcome(self, job: Job, exec_future: Outcome) -> None:
        """Rebuild the job's result from the pickle the worker sent (see
        ``_envelopes.Packed``), in this thread, not the event loop's. A result that cannot be
        rebuilt here fails this job alone, with a ResultLoadError."""
        if exec_future.cancelled() or exec_future.exception() is not None:
            return
        value = exec_future.result()[1]
        if _is_skipped(value):
            return
        try:
            job.value = _envelopes.unwrap(value)
        except Exception as exc:
            error = ResultLoadError(job.label, f" ({type(exc).__name__}: {exc})")
            error.__cause__ = exc
            job.load_error = error

    def _settle_success(self, job: Job, exec_future: Outcome) -> bool:
        """Deliver a successful result from the thread that got it, if nothing about it
        needs the dispatcher thread: no arena segment to give back or to note, no
        cancellation. Return whether it was delivered."""
        if exec_future.cancelled() or exec_future.exception() is not None or job.cancel_requested:
            return False
        elapsed, value = exec_future.result()
        if _is_skipped(value) or job.segments or job.loan is not None:
            return False
        if job.load_error is not None:
            return False
        if self.arena is not None and (
            job.func_blob in self._result_sizes  # to be forgotten, by the dispatcher
            or (
                isinstance(value, _envelopes.Packed)  # not a plain value sent as is
                and job.result_segment is not None
                and _shm.held_size(job.result_segment)
            )
        ):
            return False
        value, job.value = job.value, None
        self._deliver(job, elapsed, value)
        self._release_slot(job)
        with self._slot_lock:
            self._breakages_in_a_row = 0
        self._inflight.discard(job)
        return True

    def _deliver(self, job: Job, elapsed: float, value: Any) -> None:
        """Give a successful job its result; its slot is left for the caller to free."""
        job.elapsed = elapsed
        self._note_duration(job)
        try:
            job.future.set_result(value)
        except cf.InvalidStateError:  # cancelled by try_cancel() while it ran: dropped
            pass
        # Only now: try_cancel() reads a job without slot or executor future as waiting.
        job.exec_future = None
        job.payload = None

    def _settle_batch(self, jobs: list[Job], outcomes: list[tuple[bool, Any]]) -> list[Job]:
        """Deliver the plain successes of a batch in one pass; return the other jobs.

        ``outcomes`` holds ``(succeeded, (elapsed, sent) or exception)`` per job. A job
        is delivered here when :meth:`_settle_success` would deliver it; its slot is
        given back with all the others under one taking of the slot lock, after every
        future is set (``try_cancel`` then sees them done).
        """
        rest: list[Job] = []
        delivered: list[Job] = []
        arena_checks = self.arena is not None
        for job, (succeeded, outcome) in zip(jobs, outcomes, strict=True):
            if not succeeded or job.cancel_requested or job.segments or job.loan is not None:
                rest.append(job)
                continue
            elapsed, sent = outcome
            if _is_skipped(sent) or (
                arena_checks
                and (
                    job.func_blob in self._result_sizes
                    or (
                        isinstance(sent, _envelopes.Packed)
                        and job.result_segment is not None
                        and _shm.held_size(job.result_segment)
                    )
                )
            ):
                rest.append(job)
                continue
            try:
                value = _envelopes.unwrap(sent)
            except Exception:
                rest.append(job)  # fails with a ResultLoadError, the long way
                continue
            self._deliver(job, elapsed, value)
            delivered.append(job)
        if delivered:
            with self._slot_lock:
                free = self._free_slots
                for job in delivered:
                    if job.slot >= 0:
                        free.append(job.slot)
                        job.slot = -1
                self._breakages_in_a_row = 0
            self._inflight.difference_update(delivered)
        return rest

    def _finish(self, job: Job, exec_future: Outcome, crash: _Crash | None) -> None:
        self._settle(job, exec_future, crash)
        if job.future.done():  # not to be sent again: let its arguments go
            job.payload = None

    def _settle(self, job: Job, exec_future: Outcome, crash: _Crash | None) -> None:
        self._inflight.discard(job)
        self._release_slot(job)
        job.exec_future = None
        if self.arena is not None:
            delivered = (
                not exec_future.cancelled()
                and exec_future.exception() is None
                and not _is_skipped(exec_future.result()[1])
                and job.load_error is None
            )
            if delivered:
                self._note_result_size(job)
            elif job.result_segment is not None and _shm.held_size(job.result_segment) is None:
                _segments.unlink(job.result_segment)  # a crash may have left it half-written
            release_segments(job, self.arena)
        if exec_future.cancelled():
            _set_exception(job.future, _cancel_error(job))
            return
        exc = exec_future.exception()
        if isinstance(exc, BrokenProcessPool) and self._owns_executor:
            self._broken(job, crash)
        elif exc is not None:
            self._breakages_in_a_row = 0
            if isinstance(exc, _carried.Carried):
                exc = exc.load()
            _set_exception(job.future, exc)
        else:
            self._breakages_in_a_row = 0
            elapsed, sent = exec_future.result()
            value, job.value = job.value, None
            if job.cancel_requested or _is_skipped(sent):
                _set_exception(job.future, _cancel_error(job))
            elif job.load_error is not None:
                _set_exception(job.future, job.load_error)
            elif not job.future.done():
                job.elapsed = elapsed
                self._note_duration(job)
                job.future.set_result(value)
