"""Crash recovery: rebuilding a broken executor and sending its jobs again.

When a worker dies, CPython's ``ProcessPoolExecutor`` fails every job it holds. We
sort them out (``_broken``): the job whose worker died (found through the slot table)
fails with WorkerCrashedError, or runs again if it has retries left; every other job is
sent again to a new executor, ahead of the queued ones. Jobs still waiting with us
were never in the executor and are not touched. If workers keep dying with no job to
blame (at start-up, say), the work fails instead of looping.

Runs in the dispatcher thread: rebuilding joins threads and starts processes, so it
never runs on the event-loop thread nor inside an executor callback.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import signal
import sys

from . import _worker
from ._closing import _end_groups, _seconds_from_env
from ._dispatch_state import DispatchState
from ._job import Job, _cancel_error, _Crash, _set_exception
from .errors import WorkerCrashedError

__all__ = ["START_TIMEOUT", "Recovery", "start_timeout"]

# After this many breakages in a row with no job to blame and no job finished, the
# workers are dying by themselves (say, at start-up): fail the work instead of looping.
_MAX_BREAKAGES_IN_A_ROW = 3

# Seconds a rebuild waits for the broken executor to terminate its surviving workers
# before it kills them.
_REBUILD_WAIT = 5.0

#: Seconds a worker's ``initializer`` may take before its jobs fail naming it; the
#: environment variable AIOPAR_START_TIMEOUT overrides it (0: no limit).
START_TIMEOUT = 120.0


class Recovery(DispatchState):
    """Making executors, and replacing a broken one."""

    def _broken(self, job: Job, crash: _Crash | None) -> None:
        if job.generation == self._generation:  # first news of this breakage
            self._rebuild()
            with self._slot_lock:  # also reset by _settle_success() in another thread
                self._breakages_in_a_row += 1
        if crash is not None and crash.exitcode is not None:
            self._breakages_in_a_row = 0  # a worker died under this very job
        if job.cancel_requested or self._closed:
            _set_exception(job.future, _cancel_error(job))
        elif crash is not None and crash.exitcode is not None:
            if job.attempts < (self._retries if job.retries is None else job.retries):
                job.attempts += 1
                self._resent.append(job)
            else:
                _set_exception(job.future, WorkerCrashedError(job.label, crash.pid, crash.exitcode))
        elif self._breakages_in_a_row >= _MAX_BREAKAGES_IN_A_ROW:
            _set_exception(
                job.future, WorkerCrashedError(job.label, at_start=self._breakages_in_a_row)
            )
        else:
            self._resent.append(job)  # queued, or running beside the crash: run again

    def _rebuild(self) -> None:
        if self._closed:
            return
        # First let the broken executor's manager thread finish: it fails the futures
        # (our callbacks read the dead worker's exit code then) and joins its workers.
        # A Process's exit code is read once from the forkserver's pipe, and every
        # Process.start() polls all finished children: starting new workers meanwhile
        # would race with those reads (the loser records exit code 255).
        old = self._executor
        manager = getattr(old, "_executor_manager_thread", None)
        processes = list((getattr(old, "_processes", None) or {}).values())
        old.shutdown(wait=False)
        if manager is not None:
            manager.join(_REBUILD_WAIT)
            if manager.is_alive():  # a worker ignores SIGTERM: it gets SIGKILL
                for process in processes:
                    popen = getattr(process, "_popen", None)  # no poll(): see above
                    if popen is not None and popen.returncode is None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(popen.pid, signal.SIGKILL)
                manager.join(_REBUILD_WAIT)
        _end_groups(processes)  # what the dead workers' tasks left running
        self._executor = self._new_executor()
        self._generation += 1

    def _new_executor(self) -> cf.ProcessPoolExecutor:
        initargs = (self._slots, os.getpid(), list(sys.path), *self._init, start_timeout())
        if self._max_tasks_per_child is None:
            return cf.ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=self._ctx,
                initializer=_worker.init_worker,
                initargs=initargs,
            )
        return _RetiringExecutor(
            max_workers=self._workers,
            mp_context=self._ctx,
            initializer=_worker.init_worker,
            initargs=initargs,
            max_tasks_per_child=self._max_tasks_per_child,
        )


def start_timeout() -> float:
    """Seconds a new worker's ``initializer`` may take (``AIOPAR_START_TIMEOUT``)."""
    return _seconds_from_env("AIOPAR_START_TIMEOUT", START_TIMEOUT)


class _RetiringExecutor(cf.ProcessPoolExecutor):
    """A process pool whose workers retire after ``max_tasks_per_child`` jobs, and are
    always replaced.

    A worker counts its jobs itself and exits right after sending the result of its
    last one; the executor's manager thread reads that result (it carries the worker's
    pid as retiring, so the exit is not a crash), joins the worker and calls
    :meth:`_adjust_process_count` to start its successor. CPython's version of that
    method (3.11 up to the fix of gh-115634) first takes an "idle worker" token, and
    every result that is not a worker's last leaves one behind: with jobs queued ahead
    of the workers, tokens pile up, retired workers are not replaced, and once the last
    one retires the queued jobs wait forever. Here the pool is simply kept at
    ``max_workers`` processes: a job is never lost, never run twice, and a pool with
    this option starts all its workers with the first job.
    """

    def _adjust_process_count(self) -> None:
        # Runs in the thread that submits (ours) or in the manager thread, under the
        # executor's shutdown lock in the latter case. After shutdown() the executor
        # drops its table of processes: nothing to replace then.
        processes = self._processes
        if processes is None:
            return
        while len(processes) < self._max_workers:  # type: ignore[attr-defined]
            self._spawn_process()  # type: ignore[attr-defined]
