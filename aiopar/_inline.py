"""Running a pool's jobs in this very process, one at a time, in the order they came.

Inside a worker process, the default pool runs its jobs this way: a task that calls
``aiopar.amap`` or ``aiopar.submit`` gets its answers from its own process, instead of
starting a pool of workers of its own (one per worker: N² processes, which outlive the
task and keep the outer pool from closing). The same runner serves any pool asked to
run in-process.

The path of one job, all in the thread that submits it::

    InlineRunner.submit(job) ──► queue ──► on the next turn of the event loop running
                                   │       in this thread, one job a turn: cancelling
                                   │       the caller in between drops the queued jobs
                                   └─────► at once when no loop runs here, or when a job
                                           of ours submits it (a nested call)
    run: arguments pickled and unpickled ─► _worker.run_job ─► the result pickled and
    unpickled ─► job.future

Arguments and results cross a pickle round trip, as they would on their way to a
worker and back, so a function that works here works in a worker too. A job blocks
the thread (and the event loop) that runs it: this is for nested calls, debugging and
tests, not for speed.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import pickle
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import _carried, _envelopes, _worker
from ._job import Job

__all__ = ["InlineRunner"]


def _loop_scheduler() -> Callable[[Callable[[], object]], object] | None:
    """How to run a callable on the next turn of the event loop running in this thread
    (asyncio, uvloop or trio), or None when no loop runs here."""
    if "asyncio" in sys.modules:
        import asyncio

        try:
            return asyncio.get_running_loop().call_soon
        except RuntimeError:
            pass
    if "trio" in sys.modules:
        import trio

        try:
            return trio.lowlevel.current_trio_token().run_sync_soon
        except RuntimeError:
            pass
    return None


def _cancel_error(job: Job) -> cf.CancelledError:
    return cf.CancelledError(f"{job.label} was cancelled")


class InlineRunner:
    """Runs jobs in the calling process, in order; see the module docstring.

    Thread-safe: jobs may be submitted from any thread; each runs in the thread that
    submitted it (a task whose dependencies finish in another thread runs there).
    """

    def __init__(self) -> None:
        self._queue: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()
        self._local = threading.local()  # .running: the job this thread runs now
        self._turn_scheduled = False
        self._closed = False

    @property
    def arena(self) -> None:
        """No shared memory: nothing crosses a process boundary."""
        return None

    @property
    def workers(self) -> int:
        return 1

    def submit(self, job: Job) -> None:
        """Queue ``job`` and see that it runs: at once, or on the loop's next turn."""
        with self._lock:
            closed = self._closed
        if closed:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(RuntimeError("the pool is closed"))
            return
        if getattr(self._local, "running", None) is not None:
            self._run(job)  # submitted by the running job: run it now, as a call
            return
        with self._lock:
            self._queue.append(job)
            if self._turn_scheduled:
                return
            self._turn_scheduled = True
        self._schedule_turn()

    def _schedule_turn(self) -> None:
        """Run the queue on the event loop's next turn, or now when no loop runs here."""
        schedule = _loop_scheduler()
        if schedule is not None:
            try:
                schedule(self._turn)
            except Exception:  # the loop is closing: nobody will run the queue but us
                pass
            else:
                return
        while self._next():
            pass

    def _turn(self) -> None:
        """Run the first queued job; come back on the next turn for the others."""
        if self._next():
            self._schedule_turn()

    def _next(self) -> bool:
        """Run the first queued job, if any; return whether more are queued."""
        with self._lock:
            job = self._queue.popleft() if self._queue else None
        if job is not None:
            self._run(job)
        with self._lock:
            self._turn_scheduled = bool(self._queue)
            return self._turn_scheduled

    def _run(self, job: Job) -> None:
        future = job.future
        if job.cancel_requested or not future.set_running_or_notify_cancel():
            if not future.done():
                future.set_exception(_cancel_error(job))
            return
        previous = getattr(self._local, "running", None)
        self._local.running = job
        failure: BaseException | None = None
        result: Any = None
        try:
            # A round trip through pickle, as on the way to a worker and back: the
            # same errors for what cannot be sent, and copies, never shared objects.
            outbound = _envelopes.Outbound(
                job.payload, None, [], kind=job.kind, label=job.label, first_item=job.first_item
            )
            data = pickle.loads(pickle.dumps(outbound, protocol=pickle.HIGHEST_PROTOCOL))
            job.payload = None
            job.elapsed, value = _worker.run_job(-1, job.func_blob, job.kind, data)
            result = _envelopes.unwrap(
                pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
            )
        except _carried.Carried as carried:  # the task's exception (SystemExit: TaskExited)
            failure = carried.load()
        except BaseException as exc:  # KeyboardInterrupt too: raised where it is awaited
            failure = exc
        finally:
            self._local.running = previous
        # Only now: the tasks that depend on this one are submitted by the future's
        # callbacks, and must be queued, not run inside this call (a long chain of
        # dependents would otherwise nest one call per task).
        if failure is not None:
            future.set_exception(failure)
        elif job.cancel_requested:
            future.set_exception(_cancel_error(job))
        else:
            future.set_result(result)

    def try_cancel(self, job: Job) -> bool:
        """Cancel ``job`` if it has not started; return whether it was cancelled."""
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
        return job.future.cancel()

    def cancel(self, job: Job, *, kill: bool) -> None:
        """Drop ``job``: never run it if it has not started. A running one cannot be
        killed (it runs in this process): it finishes and its result is dropped."""
        if not self.try_cancel(job) and not job.future.done():
            job.cancel_requested = True

    def close(self) -> None:
        """Cancel the queued jobs; refuse new ones."""
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
        for job in queued:
            job.future.cancel()

    def arena_segments(self) -> list[str]:
        return []

    def worker_pids(self) -> list[int]:
        return []
