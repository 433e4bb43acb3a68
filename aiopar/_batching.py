"""Batching small jobs: many jobs in one executor work item.

A work item of ``ProcessPoolExecutor`` costs the parent about a hundred microseconds
(a pickle, a pipe message, a future, a wake-up of its threads), whatever the job: for a
task that computes for a microsecond, that is nearly all of its cost. So when more jobs
wait than the workers need to stay busy, the feeder (``_feeding.py``) sends several as
one item: one pickle, one pipe message, one executor future; each job still has its
own future, slot and result::

    pending ─► _take_batch ─► Executor.submit(run_batch, [entry, entry, ...])
                                  worker: run_job for each entry in turn, each outcome
                                  pickled on its own, its slot marked done
    job.future ◄── _on_batch_done: each outcome loaded and settled as a single job's

How many: the jobs of a batch run one after the other, so a batch holds about
:data:`TARGET_SECONDS` of work, from the measured duration of each function's recent
jobs (as ``amap`` sizes its chunks); a job whose function was never measured, or takes
longer than that, goes alone, so long tasks never wait behind each other. A batch also
takes no more than its share of the waiting jobs, so every worker gets some.

When: small jobs (their function's recent jobs computed for less than a batch's worth)
that become ready one at a time, as a task graph's dependents do, would each take a work
item while the executor has room. So once the executor holds
:data:`BATCH_AHEAD_PER_WORKER` items per worker, small jobs wait with us (cancellable
for free) and leave together when an item comes back; below that they go at once, so
one task on an idle pool is not delayed.

Failures stay the failure of one job: when a worker dies, the slot table says which job
of the batch was running (its slot holds the worker's pid; finished ones are marked
done): that job fails with WorkerCrashedError (or runs again, with retries), and the
others of the batch are sent again (``_recovery.py``). A job cancelled before its
worker reached it is skipped, as a single one is. A batch that cannot be sent (an
argument that does not pickle) is sent again as single jobs, so that only the culprit
fails.

Tasks of ``async def`` functions are batched by another rule: their coroutines run at
once on the worker's event loop, so a batch takes up to the pool's ``concurrency`` of
them (and its share of the waiting ones), whatever their durations, and never mixes
them with plain jobs.

Threads: ``_take_batch`` and ``_launch_batch`` run in the dispatcher thread,
``_on_batch_done`` in the executor's manager thread. Only pools that own their worker
processes batch, and not with ``max_tasks_per_child`` (a worker counts work items).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import pickle
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

from . import _envelopes, _worker_batch
from ._dispatch_state import DispatchState
from ._job import Job, Settled, _cancel_error, _set_exception, release_segments
from .errors import ResultLoadError

__all__ = ["BATCH_AHEAD_PER_WORKER", "MODE", "TARGET_SECONDS", "Batching"]

#: Seconds of work a batch holds at most (from the measured durations of its jobs).
TARGET_SECONDS = 0.002
#: Jobs in a batch at most.
MOST = 64
#: Work items per worker in the executor beyond which small jobs (see ``_small``) wait
#: with us instead of going one item each: the workers have enough to do meanwhile, and
#: the jobs that gather leave in a batch as soon as an item comes back. Without it,
#: tasks that become ready one at a time (a task graph's dependents) each took a work
#: item of their own, with room for 32 per worker.
BATCH_AHEAD_PER_WORKER = 2
#: "auto": batch when it pays, as described above; "off": never (every job is a work
#: item of its own); "always": batch whatever waits, durations unknown or not (tests).
MODE: Literal["auto", "off", "always"] = "auto"
# Functions whose durations are remembered, at most.
_DURATIONS_KEPT = 256


class Batching(DispatchState):
    """Taking batches from the pending jobs, launching them, settling their jobs."""

    def _batchable(self, job: Job) -> bool:
        return (
            self._batch_mode != "off"
            and not job.alone
            and job.kind == _envelopes.CALL
            and job.destination is None
            and not self._borrows(job)
        )

    def _small(self, job: Job) -> bool:
        """Whether ``job`` is one to send in a batch rather than alone: its function's
        recent jobs computed for less than :data:`TARGET_SECONDS`."""
        if self._batch_mode != "auto" or not self._batchable(job) or job.concurrency:
            return False
        spent = self._durations.get(job.func_blob)
        return spent is not None and spent < TARGET_SECONDS

    def _duration(self, job: Job) -> float | None:
        if self._batch_mode == "always":
            return 0.0
        return self._durations.get(job.func_blob)

    def _take_batch(self, first: Job) -> list[Job]:
        """``first`` and the pending jobs to send with it (only ``first``: no batch)."""
        if first.concurrency:
            return self._take_coroutines(first)
        waiting = len(self._pending) + 1
        if not self._batchable(first) or (self._batch_mode == "auto" and waiting <= self._workers):
            return [first]
        share = max(1, waiting // self._workers)
        room = min(MOST, share, len(self._free_slots))
        spent = self._duration(first)
        if spent is None:
            return [first]
        batch = [first]
        while len(batch) < room and self._pending:
            job = self._pending[0]
            if job.future.done():
                self._pending.popleft()
                continue
            duration = self._duration(job)
            if not self._batchable(job) or duration is None:
                break
            if spent + duration > TARGET_SECONDS and self._batch_mode == "auto":
                break
            if self._claim_next(job):
                spent += duration
                batch.append(job)
        return batch

    def _take_coroutines(self, first: Job) -> list[Job]:
        """``first``, a task of an async def function, and the tasks of async def
        functions waiting behind it: up to ``first.concurrency``, and an even share of
        the waiting ones per worker. They run at once on the worker's loop, so their
        durations do not add up (see ``_worker_loop.py``)."""
        waiting = len(self._pending) + 1
        if not self._batchable(first) or waiting <= 1:
            return [first]
        share = -(-waiting // self._workers)
        room = min(first.concurrency, share, len(self._free_slots))
        batch = [first]
        while len(batch) < room and self._pending:
            job = self._pending[0]
            if job.future.done():
                self._pending.popleft()
                continue
            if not job.concurrency or not self._batchable(job):
                break
            if self._claim_next(job):
                batch.append(job)
        return batch

    def _claim_next(self, job: Job) -> bool:
        """Take ``job``, the first pending one, off the queue; whether it is to be sent
        (False: cancelled meanwhile, or its cancellation asked for, which settles it)."""
        self._pending.popleft()
        if job.generation < 0 and not job.future.set_running_or_notify_cancel():
            return False
        if job.cancel_requested:
            _set_exception(job.future, _cancel_error(job))
            return False
        return True

    def _launch_batch(self, jobs: list[Job]) -> None:
        entries = [self._entry(job) for job in jobs]
        exec_future, processes = self._hand_over(_worker_batch.run_batch, entries, jobs=jobs)
        if exec_future is None:
            return
        self._batched_jobs += len(jobs)
        for job in jobs:
            job.exec_future = exec_future
            self._inflight.add(job)
        exec_future.add_done_callback(functools.partial(self._on_batch_done, jobs, processes))

    def _on_batch_done(
        self, jobs: list[Job], processes: dict[int, Any], exec_future: cf.Future[Any]
    ) -> None:
        # Runs in the executor's manager thread (or ours).
        self._items.discard(exec_future)
        if exec_future.cancelled() or isinstance(exec_future.exception(), BrokenProcessPool):
            for job in jobs:  # each sorted out by its slot, as a single job is
                self._on_exec_done(job, processes, exec_future)
            return
        if exec_future.exception() is not None:  # not sent: each job goes again alone
            for job in jobs:
                self._events.put(("unbatch", job))
            return
        outcomes: list[tuple[bool, Any]] = []
        for job, data in zip(jobs, exec_future.result(), strict=True):
            try:
                outcomes.append(pickle.loads(data))
            except Exception as exc:
                error = ResultLoadError(job.label, f" ({type(exc).__name__}: {exc})")
                error.__cause__ = exc
                outcomes.append((False, error))
        rest = self._settle_batch(jobs, outcomes)  # the plain successes, in one pass
        if rest:
            by_job = {id(job): outcome for job, outcome in zip(jobs, outcomes, strict=True)}
            for job in rest:
                succeeded, value = by_job[id(job)]
                outcome = Settled(value) if succeeded else Settled(error=value)
                self._on_exec_done(job, processes, outcome, pump=False)
        if self._pending or self._closed:  # room for pending jobs: one wake-up for all
            self._events.put(("pump",))

    def _unbatch(self, job: Job) -> None:
        """Take back a job of a batch that could not be sent, to send it alone."""
        self._inflight.discard(job)
        self._release_slot(job)
        job.exec_future = None
        job.alone = True
        if self._closed:  # closing: not to be sent again
            job.payload = None
            _set_exception(job.future, _cancel_error(job, "the pool was closed"))
        if self.arena is not None:
            release_segments(job, self.arena)
        if not job.future.done():
            self._resent.append(job)

    def _note_duration(self, job: Job) -> None:
        """Remember how long ``job`` computed, for the size of its function's batches."""
        durations = self._durations
        before = durations.get(job.func_blob)
        if len(durations) > _DURATIONS_KEPT:
            durations.clear()
        durations[job.func_blob] = job.elapsed if before is None else (before + job.elapsed) / 2
