"""Feeding the executor: jobs wait with us and are launched a few per worker at a time.

Runs in the dispatcher thread "aiopar-dispatch", except :meth:`Feeding._on_exec_done`,
the done-callback of a launched job, which runs in the executor's manager thread (or in
ours, for a job that failed at once)::

    inbox ─► pending deque ──_pump──► _launch: take a slot (_slots.py), lend a segment
               (resent first)    │     (_lending.py), Executor.submit(run_job, ...)
                                 │               │
                                 └─► _launch_batch: several small jobs as one work item
                                       (_batching.py)   │
    "done" event ◄── _on_exec_done ◄─────────────────────┘ a plain success is settled
    (dispatcher)      (manager)        right there (_settling.py); the rest comes to us
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import _envelopes, _segments, _worker
from ._dispatch_state import DispatchState
from ._job import Job, Outcome, _cancel_error, _Crash, _set_exception

__all__ = ["AHEAD_BORROWING_PER_WORKER", "AHEAD_PER_WORKER", "Feeding"]

# Jobs handed to the executor ahead of the workers, per worker. With many queued there,
# the executor's manager thread feeds a worker the next job in the same wake-up that
# brings the last one's result, instead of us waking it once more per job: 64 small
# tasks cost the parent about a third less CPU than with 2. A job that borrows an arena
# segment for its result takes it when launched, so those stay close to the workers:
# a segment lent to a job that waits behind 60 others would be missing for the next one.
AHEAD_PER_WORKER = 32
AHEAD_BORROWING_PER_WORKER = 2


class Feeding(DispatchState):
    """Accepting jobs, launching them into the executor, hearing back from it."""

    def _accept_inbox(self) -> None:
        """Accept the jobs submitted since the last call (see ``Dispatcher.submit``).

        A method of its own, so that no local variable of the dispatcher thread's loop
        keeps the last job (and its result) alive while it waits for the next event.
        """
        self._inbox_told = False  # first: a job appended from now on is announced again
        inbox = self._inbox
        while inbox:
            self._accept(inbox.popleft())

    def _accept(self, job: Job) -> None:
        if self._closed:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(RuntimeError("the pool is closed"))
        elif not job.future.done():
            self._pending.append(job)

    def _pump(self) -> None:
        while True:
            if self._resent:  # first, in the order they were first submitted
                self._resent.sort(key=lambda job: job.id)
                self._pending.extendleft(reversed(self._resent))
                self._resent.clear()
            # "always" (tests) lets jobs wait beyond one work item per worker, to batch.
            limit = self._workers if self._batch_mode == "always" else self._limit
            if not self._pending or len(self._items) >= limit:
                return
            if len(self._items) >= self._batch_ahead and self._small(self._pending[0]):
                return  # it leaves in a batch when an item comes back (see _batching.py)
            if self._owns_executor and not self._free_slots:
                return
            if len(self._inflight) >= self._borrowing_limit and self._borrows(self._pending[0]):
                return
            job = self._pending.popleft()
            if job.future.done():  # cancelled, or failed by a close
                continue
            # A job waiting here is PENDING, so its caller can still cancel() it; it
            # becomes RUNNING when first handed to the executor (a resent one already is).
            if job.generation < 0 and not job.future.set_running_or_notify_cancel():
                continue
            if job.cancel_requested:
                _set_exception(job.future, _cancel_error(job))
                continue
            batch = self._take_batch(job)
            if len(batch) > 1:
                self._launch_batch(batch)
            else:
                self._launch(job)

    def _launch(self, job: Job) -> None:
        entry = self._entry(job)
        exec_future, processes = self._hand_over(_worker.run_job, *entry, jobs=[job])
        if exec_future is None:
            return
        job.exec_future = exec_future
        self._inflight.add(job)
        exec_future.add_done_callback(functools.partial(self._on_exec_done, job, processes))

    def _entry(self, job: Job) -> tuple[int, bytes, str, Any, Any]:
        """Make ready to send ``job``: its slot, its outbound payload, where its result may
        go in shared memory; return the arguments of ``_worker.run_job``."""
        if self._owns_executor:
            with self._slot_lock:
                job.slot = self._free_slots.pop()
                self._slots[job.slot] = _worker.SLOT_FREE
        job.generation = self._generation
        payload: Any = job.payload
        if not job.plain:  # plain values pickle as they are, with no arrays to place
            job.segments = []  # filled as the executor pickles the payload
            payload = _envelopes.Outbound(
                job.payload,
                self.arena,
                job.segments,
                kind=job.kind,
                label=job.label,
                first_item=job.first_item,
            )
        shm = None
        if self.arena is not None:
            job.result_segment = _segments.new_name(self.token)
            loan = None
            if self._borrows(job):
                job.loan = self.arena.lend(self._result_sizes[job.func_blob])
                if job.loan is not None:
                    loan = _segments.Loan(job.loan.name, job.loan.size, job.loan.touched)
            shm = (job.result_segment, job.destination, self.token, loan)
        return (job.slot, job.func_blob, job.kind, payload, shm)

    def _hand_over(
        self, fn: Any, *args: Any, jobs: list[Job]
    ) -> tuple[cf.Future[Any] | None, dict[int, Any]]:
        """Submit ``fn(*args)`` for ``jobs`` to the executor; return its future (None if
        the executor refused it: then the jobs are sent again, or failed) and the
        executor's table of processes."""
        # The executor's own table of its processes (a dict it keeps until shut down):
        # kept for the done-callback because shutdown(wait=False) drops it.
        processes = getattr(self._executor, "_processes", None)
        if processes is None:  # a foreign executor
            processes = {}
        workers_before = len(processes)
        try:
            exec_future = self._executor.submit(fn, *args)
        except BaseException as exc:
            broken = self._owns_executor and isinstance(exc, BrokenProcessPool)
            if broken:
                self._rebuild()  # broke between two jobs: send these to the new one
            for job in jobs:
                self._release_slot(job)
                if broken:
                    self._resent.append(job)
                else:  # a foreign executor refusing work (shut down, broken): they fail
                    _set_exception(job.future, exc)
            return None, processes
        self._items.add(exec_future)
        if len(processes) > workers_before:
            # CPython's submit() wakes the executor's manager thread *before* starting
            # the new worker, and that thread watches the workers it knew when it went
            # back to waiting: a crash of the new one would go unnoticed until some
            # other job finished. Wake it again now that the worker is in the table.
            wakeup = getattr(self._executor, "_executor_manager_thread_wakeup", None)
            if wakeup is not None:
                wakeup.wakeup()
        return exec_future, processes

    def _on_exec_done(
        self, job: Job, processes: dict[int, Any], exec_future: Outcome, *, pump: bool = True
    ) -> None:
        # Runs in the executor's manager thread (or ours). A plain success is settled
        # here (the caller gets it one thread hop sooner, and the dispatcher thread is
        # not woken for it); anything else is handed over.
        if isinstance(exec_future, cf.Future):
            self._items.discard(exec_future)
        self._load_outcome(job, exec_future)
        if self._settle_success(job, exec_future):
            # The job left _inflight: room for a pending one. The dispatcher checks
            # _inflight after it queues a job or closes, so one of us sees the other.
            if pump and (self._pending or self._closed):
                self._events.put(("pump",))
            return
        # A broken pool fails its futures *before* terminating the surviving workers,
        # so a worker that is already dead here is the one that crashed. Its process is
        # looked up among those of the executor that ran the job: by now the dispatcher
        # thread may have replaced that executor with a new one.
        crash = None
        if (
            self._owns_executor
            and not exec_future.cancelled()
            and isinstance(exec_future.exception(), BrokenProcessPool)
        ):
            pid = int(self._slots[job.slot])
            if pid > 0:
                proc = processes.get(pid)
                crash = _Crash(pid, None if proc is None else proc.exitcode)
        self._events.put(("done", job, exec_future, crash))
