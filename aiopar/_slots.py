"""The slot table: which worker runs which job, so that a job can be skipped or killed.

Each launched job takes a slot of a shared array (``multiprocessing.RawArray``) that its
worker writes its pid into when it starts the job (see ``_worker.run_job``).
A slot still free means not started: :meth:`Slots.try_cancel` marks it cancelled and the
worker skips the job. A pid means running: ``cancel="kill"`` sends that pid SIGKILL; for
a job of an async def function, ``cancel="wait"`` marks the slot
``SLOT_CANCEL_RUNNING`` and sends SIGUSR1, and the worker cancels its coroutines.
A crash is pinned on the job whose slot holds the dead worker's pid (``_feeding.py``).

Threads: ``try_cancel`` runs in any thread (the event loop's, when a caller stops
waiting); the rest in the dispatcher thread or the executor's manager thread. The slot
table and ``job.slot`` are guarded by ``_slot_lock``, held for a few reads and writes.
"""

from __future__ import annotations

import os
import signal

from . import _worker, _worker_loop
from ._dispatch_state import DispatchState
from ._job import Job, _cancel_error, _set_exception

__all__ = ["Slots"]


class Slots(DispatchState):
    """Skipping jobs no worker started, killing the worker that runs one."""

    def try_cancel(self, job: Job) -> bool:
        """Cancel ``job`` now if no worker has started it; return whether it was cancelled.

        Thread-safe and quick: a job waiting with us or inside the executor's queue is
        marked so that no worker runs it, and its future fails with CancelledError.
        """
        if job.future.cancel():
            return True
        with self._slot_lock:
            if job.future.done():
                return False
            if job.slot < 0 and job.exec_future is None:  # resent, waiting with us
                job.cancel_requested = True
                _set_exception(job.future, _cancel_error(job))
                return True
            if self._slots is None or job.slot < 0:
                return False
            if self._slots[job.slot] != _worker.SLOT_FREE:
                return False  # a worker has it
            # A worker reading the slot at this very moment may still run the job;
            # its result is then dropped.
            self._slots[job.slot] = _worker.SLOT_CANCELLED
            job.cancel_requested = True
            _set_exception(job.future, _cancel_error(job))
            return True

    def _cancel(self, job: Job, kill: bool) -> None:
        if self.try_cancel(job) or job.future.done():
            return
        job.cancel_requested = True  # running: its result will be dropped
        # Never exec_future.cancel(): CPython 3.11's broken-pool path then fails on the
        # cancelled future in its own thread.
        if kill and self._slots is not None:
            # Under the lock: a result settled in the executor's thread (see
            # _settle_success) releases the slot meanwhile, and the worker that ran the
            # job may already run another one.
            with self._slot_lock:
                finished = job.future.done() or job.slot < 0
                pid = 0 if finished else int(self._slots[job.slot])
            if pid > 0:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        elif job.concurrency and self._slots is not None:
            self._cancel_coroutines(job)

    def _cancel_coroutines(self, job: Job) -> None:
        """Cancel the coroutines of a running job of an async def function, in its
        worker, which lives on: mark its slot, and signal the worker to look (see
        ``_worker_loop.py``)."""
        with self._slot_lock:
            finished = job.future.done() or job.slot < 0
            pid = 0 if finished else int(self._slots[job.slot])
            if pid > 0:
                self._slots[job.slot] = _worker_loop.SLOT_CANCEL_RUNNING
        if pid > 0:
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def _release_slot(self, job: Job) -> None:
        with self._slot_lock:
            if job.slot >= 0:
                self._free_slots.append(job.slot)
                job.slot = -1
