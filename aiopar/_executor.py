"""Owning the executor: feeding it jobs, surviving crashes, killing on cancel.

The path of one job::

    event-loop thread                 dispatcher thread "aiopar-dispatch"     executor + workers
    ─────────────────                 ───────────────────────────────────     ──────────────────
    Dispatcher.submit(job) ─put──►  events ─► pending deque
      (non-blocking)                     │ at most 32 jobs per worker in the executor
                                         │ (2 per worker for those that borrow a segment)
                                         ├──► Executor.submit(run_job, slot, func, kind,
                                         │                    Portable(payload))
                                         │    pickled by the executor's feeder thread ─► worker:
                                         │                                 writes its pid in
                                         │                                 slots[slot], runs
    job.future ◄── set_result ◄─────────────── done-callback (executor's manager thread):
      │                                        a plain success is settled right there;
      │              "done" event ◄──────────  failures, crashes, cancelled jobs and
      │              (settled here)            results in arena segments come to us
      │  a done-callback on job.future wakes the waiting event loop (see _waiting.py)

Nothing here touches an event loop, so one dispatcher serves every loop and backend.

Why a thread of our own, and not executor.submit() straight from the event loop:

* Jobs wait in *our* queue, beyond the few per worker handed to the executor, so a
  crash only fails the jobs that were really in the executor; they are sorted out with
  the shared ``slots`` table (which pid runs which job). The job whose worker died fails
  with WorkerCrashedError; every other one is sent again to a new executor.
* ``cancel="kill"`` knows the pid to terminate; a job cancelled before a worker starts
  it is marked in its slot and skipped by the worker.
* Rebuilding the executor (and starting processes) blocks: it happens here, never on the
  event-loop thread, and never inside an executor callback.

Results and exceptions come back as pickles the executor does not open
(``_worker.Packed``, ``_worker.Carried``): they are rebuilt in the thread that settles the
job, so one that cannot be rebuilt here fails its job alone instead of breaking the pool.

Closing (``close()``, and at interpreter exit ``_close_all_at_exit``, a
``threading._register_atexit`` hook) runs in the dispatcher thread: queued jobs are
dropped, running ones awaited (at exit, for a bounded time, then killed), and the
executor is shut down in a thread "aiopar-shutdown" whose join is bounded: workers that
do not exit are sent SIGTERM, then SIGKILL, and what tasks left in the workers' process
groups is killed. In a child made by ``os.fork()``, ``_forget_after_fork`` drops the
parent's dispatchers without touching them.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import functools
import itertools
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.process
import multiprocessing.resource_tracker
import os
import queue
import secrets
import signal
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from . import _packing, _shm, _worker
from .errors import ResultLoadError, WorkerCrashedError

__all__ = ["Dispatcher", "Job"]

# After this many breakages in a row with no job to blame and no job finished, the
# workers are dying by themselves (say, at start-up): fail the work instead of looping.
_MAX_BREAKAGES_IN_A_ROW = 3

_job_ids = itertools.count(1)

# Seconds a rebuild waits for the broken executor to terminate its surviving workers
# before it kills them.
_REBUILD_WAIT = 5.0

#: Seconds a worker's ``initializer`` may take before its jobs fail naming it; the
#: environment variable AIOPAR_START_TIMEOUT overrides it (0: no limit).
START_TIMEOUT = 120.0

#: Seconds running jobs get to finish when the program ends with pools still open,
#: before their workers are killed; AIOPAR_EXIT_TIMEOUT overrides it.
EXIT_TIMEOUT = 5.0

# Seconds idle workers get to exit when their executor shuts down, before SIGTERM and
# then SIGKILL (they exit at once, unless a task left them unable to).
_WORKERS_EXIT_WAIT = 5.0

# How many functions' last result sizes are remembered, to lend each job a segment.
_RESULT_SIZES_KEPT = 256

# Jobs handed to the executor ahead of the workers, per worker. With many queued there,
# the executor's manager thread feeds a worker the next job in the same wake-up that
# brings the last one's result, instead of us waking it once more per job: 64 small
# tasks cost the parent about a third less CPU than with 2. A job that borrows an arena
# segment for its result takes it when launched, so those stay close to the workers:
# a segment lent to a job that waits behind 60 others would be missing for the next one.
_AHEAD_PER_WORKER = 32
_AHEAD_BORROWING_PER_WORKER = 2


@dataclass(eq=False)
class Job:
    """One unit of work for a worker: a task, a chunk of a map, a reduction step."""

    func_blob: bytes
    kind: str
    payload: object
    label: str
    future: cf.Future[Any] = field(default_factory=cf.Future)
    elapsed: float = 0.0  # seconds the worker spent computing, for chunk sizing
    id: int = field(default_factory=lambda: next(_job_ids))
    retries: int | None = None  # runs again after a crash of its worker; None: the pool's
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
    loan: _shm.Segment | None = None
    segments: list[_shm.Segment] = field(default_factory=list)
    # Set by _load_outcome() once the executor's future is done: the result, rebuilt
    # from its pickle, or the error rebuilding it raised.
    value: Any = None
    load_error: BaseException | None = None


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


class Dispatcher:
    """Feeds jobs to one executor from a background thread; see the module docstring.

    Args:
        workers: number of worker processes (or the parallelism of ``executor``).
        mp_context: multiprocessing context of the process pool we own.
        initializer_blob, initargs_blob: pickled ``initializer`` and ``initargs``.
        max_tasks_per_child: replace a worker after it ran this many jobs (see
            :class:`_RetiringExecutor`).
        executor: an executor to use instead of our own; not owned, not shut down, and
            without crash pinning or kill support.
        retries: how many times a job whose worker crashed is run again.
    """

    def __init__(
        self,
        *,
        workers: int,
        mp_context: multiprocessing.context.BaseContext,
        initializer_blob: bytes | None,
        initargs_blob: bytes | None,
        max_tasks_per_child: int | None,
        executor: cf.Executor | None,
        retries: int = 0,
    ) -> None:
        self._workers = workers
        self._ctx = mp_context
        self._init = (initializer_blob, initargs_blob)
        self._max_tasks_per_child = max_tasks_per_child
        self._owns_executor = executor is None
        self._retries = retries
        self._limit = _AHEAD_PER_WORKER * workers
        self._borrowing_limit = _AHEAD_BORROWING_PER_WORKER * workers
        self._events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._pending: collections.deque[Job] = collections.deque()
        self._resent: list[Job] = []  # to run again, ahead of the pending ones
        self._inflight: set[Job] = set()
        self._generation = 0
        self._breakages_in_a_row = 0
        self._closed = False
        self._pid = os.getpid()
        # Guards job.slot and the slot table against try_cancel() from other threads.
        # Held for a few reads and writes only, never while starting processes.
        self._slot_lock = threading.Lock()
        self.token = secrets.token_hex(4)
        self.arena = _shm.Arena(self.token) if executor is None else None
        # Bytes of shared memory the last result of each function needed (by pickled
        # function): the size of the arena segment to lend its next job.
        self._result_sizes: dict[bytes, int] = {}
        if self._owns_executor:
            self._slots: Any = mp_context.RawArray("q", self._limit)
            self._free_slots = list(range(self._limit))
            self._executor: cf.Executor = self._new_executor()
        else:
            assert executor is not None
            self._slots = None
            self._free_slots = []
            self._executor = executor
        self._thread = threading.Thread(target=self._run, name="aiopar-dispatch", daemon=True)
        self._thread.start()
        with _live_lock:
            _live.add(self)

    # ── called from any thread ─────────────────────────────────────────────────────

    def submit(self, job: Job) -> None:
        """Queue ``job``; its ``future`` receives the result. Never blocks.

        Raises:
            RuntimeError: in a process forked (``os.fork()``) from the one that made
                this dispatcher: its thread and workers are not this process's.
        """
        if os.getpid() != self._pid:
            raise RuntimeError(
                f"this pool was started in process {self._pid}, and this process is a "
                "copy of it made by os.fork(): its workers belong to the parent; make a "
                "new aiopar.Pool in this process (the module-level functions do so)"
            )
        self._events.put(("submit", job))

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

    def cancel(self, job: Job, *, kill: bool) -> None:
        """Drop ``job``: skip it if no worker started it; if one did, terminate that
        worker when ``kill`` is true, else let it finish. Its result is dropped."""
        self._events.put(("cancel", job, kill))

    def close(self, timeout: float | None = None) -> None:
        """Cancel queued jobs, let running ones finish, stop the workers. Blocks.

        ``timeout``: seconds to wait for running jobs before their workers are killed;
        None waits for them. Workers that do not exit once idle (a task left a thread or
        a child running) are ended after :data:`_WORKERS_EXIT_WAIT` seconds either way.
        """
        if self._thread.is_alive():
            self._events.put(("close", timeout))
            self._thread.join()

    @property
    def workers(self) -> int:
        return self._workers

    def arena_segments(self) -> list[str]:
        """Names of the shared-memory segments kept for reuse (empty without an arena)."""
        return self.arena.names() if self.arena is not None else []

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (empty for a foreign executor)."""
        procs = getattr(self._executor, "_processes", None) or {}
        return list(procs)

    # ── the dispatcher thread ──────────────────────────────────────────────────────

    def _run(self) -> None:
        while True:
            event = self._events.get()
            what = event[0]
            try:
                if what == "submit":
                    self._accept(event[1])
                elif what == "done":
                    self._finish(event[1], event[2], event[3])
                elif what == "cancel":
                    self._cancel(event[1], event[2])
                elif what == "close":
                    self._shutdown(event[1])
                    return
                self._pump()
            except Exception as exc:  # a bug of ours: fail that job, keep serving the rest
                if what in ("submit", "done", "cancel"):
                    _set_exception(event[1].future, exc)
            # Waiting for the next event must not keep this one's job (and its result)
            # alive: the caller's arrays free their shared memory when they die.
            del event

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
            if not self._pending or len(self._inflight) >= self._limit:
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
            self._launch(job)

    def _borrows(self, job: Job) -> bool:
        """Whether launching ``job`` lends it an arena segment for its result."""
        return (
            self.arena is not None
            and job.destination is None
            and job.func_blob in self._result_sizes
        )

    def _launch(self, job: Job) -> None:
        if self._owns_executor:
            with self._slot_lock:
                job.slot = self._free_slots.pop()
                self._slots[job.slot] = _worker.SLOT_FREE
        job.generation = self._generation
        payload = _worker.Outbound(
            job.payload,
            self.arena,
            job.segments,
            kind=job.kind,
            label=job.label,
            first_item=job.first_item,
        )
        shm = None
        if self.arena is not None:
            job.result_segment = _shm.new_name(self.token)
            loan = None
            if self._borrows(job):
                job.loan = self.arena.lend(self._result_sizes[job.func_blob])
                if job.loan is not None:
                    loan = _shm.Loan(job.loan.name, job.loan.size, job.loan.touched)
            shm = (job.result_segment, job.destination, self.token, loan)
        # The executor's own table of its processes (a dict it keeps until shut down):
        # kept for the done-callback because shutdown(wait=False) drops it.
        processes = getattr(self._executor, "_processes", None)
        if processes is None:  # a foreign executor
            processes = {}
        workers_before = len(processes)
        try:
            exec_future = self._executor.submit(
                _worker.run_job, job.slot, job.func_blob, job.kind, payload, shm
            )
        except BaseException as exc:
            self._release_slot(job)
            if self._owns_executor and isinstance(exc, BrokenProcessPool):
                self._rebuild()  # broke between two jobs: send this one to the new one
                self._resent.append(job)
            else:  # a foreign executor refusing work (shut down, broken): this job fails
                _set_exception(job.future, exc)
            return
        job.exec_future = exec_future
        self._inflight.add(job)
        if len(processes) > workers_before:
            # CPython's submit() wakes the executor's manager thread *before* starting
            # the new worker, and that thread watches the workers it knew when it went
            # back to waiting: a crash of the new one would go unnoticed until some
            # other job finished. Wake it again now that the worker is in the table.
            wakeup = getattr(self._executor, "_executor_manager_thread_wakeup", None)
            if wakeup is not None:
                wakeup.wakeup()
        exec_future.add_done_callback(functools.partial(self._on_exec_done, job, processes))

    def _on_exec_done(
        self, job: Job, processes: dict[int, Any], exec_future: cf.Future[Any]
    ) -> None:
        # Runs in the executor's manager thread (or ours). A plain success is settled
        # here (the caller gets it one thread hop sooner, and the dispatcher thread is
        # not woken for it); anything else is handed over.
        self._load_outcome(job, exec_future)
        if self._settle_success(job, exec_future):
            # The job left _inflight: room for a pending one. The dispatcher checks
            # _inflight after it queues a job or closes, so one of us sees the other.
            if self._pending or self._closed:
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

    def _load_outcome(self, job: Job, exec_future: cf.Future[Any]) -> None:
        """Rebuild the job's result from the pickle the worker sent (see
        ``_worker.Packed``), in this thread, not the event loop's. A result that cannot be
        rebuilt here fails this job alone, with a ResultLoadError."""
        if exec_future.cancelled() or exec_future.exception() is not None:
            return
        value = exec_future.result()[1]
        if _is_skipped(value):
            return
        try:
            job.value = _worker.unwrap(value)
        except Exception as exc:
            error = ResultLoadError(job.label, f" ({type(exc).__name__}: {exc})")
            error.__cause__ = exc
            job.load_error = error

    def _settle_success(self, job: Job, exec_future: cf.Future[Any]) -> bool:
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
            or (job.result_segment is not None and _shm.held_size(job.result_segment))
        ):
            return False
        job.elapsed = elapsed
        value, job.value = job.value, None
        try:
            job.future.set_result(value)
        except cf.InvalidStateError:  # cancelled by try_cancel() while it ran: dropped
            pass
        # Only now: try_cancel() reads a job without slot or executor future as waiting.
        job.exec_future = None
        job.payload = None
        self._release_slot(job)
        with self._slot_lock:
            self._breakages_in_a_row = 0
        self._inflight.discard(job)
        return True

    def _release_slot(self, job: Job) -> None:
        with self._slot_lock:
            if job.slot >= 0:
                self._free_slots.append(job.slot)
                job.slot = -1

    def _finish(self, job: Job, exec_future: cf.Future[Any], crash: _Crash | None) -> None:
        self._settle(job, exec_future, crash)
        if job.future.done():  # not to be sent again: let its arguments go
            job.payload = None

    def _settle(self, job: Job, exec_future: cf.Future[Any], crash: _Crash | None) -> None:
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
                _shm.unlink(job.result_segment)  # a crash may have left it half-written
            if job.loan is not None:
                job.segments.append(job.loan)  # unless the result claimed it
                job.loan = None
            self.arena.give_back(job.segments)
            job.segments.clear()
        if exec_future.cancelled():
            _set_exception(job.future, _cancel_error(job))
            return
        exc = exec_future.exception()
        if isinstance(exc, BrokenProcessPool) and self._owns_executor:
            self._broken(job, crash)
        elif exc is not None:
            self._breakages_in_a_row = 0
            if isinstance(exc, _worker.Carried):
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
                job.future.set_result(value)

    def _note_result_size(self, job: Job) -> None:
        # The result went into a new segment, or into the lent one.
        size = _shm.held_size(job.result_segment) if job.result_segment else None
        if size is None and job.loan is not None:
            size = _shm.held_size(job.loan.name)
        sizes = self._result_sizes
        if size is not None:
            sizes.pop(job.func_blob, None)
            sizes[job.func_blob] = size
            if len(sizes) > _RESULT_SIZES_KEPT:
                del sizes[next(iter(sizes))]
        else:  # no big array in the result (or already dropped by the caller)
            sizes.pop(job.func_blob, None)

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

    def _shutdown(self, timeout: float | None) -> None:
        self._closed = True
        with _live_lock:
            _live.discard(self)
        self._pending.extend(self._resent)
        self._resent.clear()
        for job in self._pending:
            # Not future.cancel(): the caller would get a CancelledError that does not
            # say which call it was. (A resent job is RUNNING already.)
            if job.future.running() or job.future.set_running_or_notify_cancel():
                _set_exception(job.future, _cancel_error(job, "the pool was closed"))
        self._pending.clear()
        executor = self._executor
        processes = list((getattr(executor, "_processes", None) or {}).values())
        stopper = None
        if self._owns_executor:
            with self._slot_lock:  # jobs may finish meanwhile (see _settle_success)
                for job in list(self._inflight):  # in the executor, not started: skip them
                    if job.slot >= 0 and self._slots[job.slot] == _worker.SLOT_FREE:
                        self._slots[job.slot] = _worker.SLOT_CANCELLED
            # shutdown(wait=True) in a thread of its own, so that we can bound the wait:
            # not shutdown(wait=False), which drops the executor's process table that its
            # manager thread still reads when a worker retires (max_tasks_per_child).
            stopper = threading.Thread(
                target=executor.shutdown, name="aiopar-shutdown", daemon=True
            )
            stopper.start()
        # Deliver what finished while shutting down; refuse anything new. Past the
        # timeout, the workers still running jobs are killed: their jobs then fail.
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._inflight:
            try:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                event = self._events.get(timeout=wait)
            except queue.Empty:
                _kill(processes, signal.SIGKILL)
                deadline = None
                continue
            if event[0] == "done":
                self._finish(event[1], event[2], event[3])
            elif event[0] == "submit":
                self._accept(event[1])
        if stopper is not None:
            _end_workers(stopper, processes)
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if event[0] == "submit":
                self._accept(event[1])
        if self.arena is not None:
            self.arena.close()
            _shm.unlink_adopted(self.token)

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


def _seconds_from_env(name: str, default: float) -> float:
    """A number of seconds from the environment variable ``name`` (``default`` if it is
    unset or not a number >= 0)."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value >= 0 else default


def start_timeout() -> float:
    """Seconds a new worker's ``initializer`` may take (``AIOPAR_START_TIMEOUT``)."""
    return _seconds_from_env("AIOPAR_START_TIMEOUT", START_TIMEOUT)


def exit_timeout() -> float:
    """Seconds running jobs get at interpreter exit (``AIOPAR_EXIT_TIMEOUT``)."""
    return _seconds_from_env("AIOPAR_EXIT_TIMEOUT", EXIT_TIMEOUT)


def _kill(processes: list[Any], signum: int) -> None:
    """Send ``signum`` to those of ``processes`` not known to have ended."""
    for process in processes:
        popen = getattr(process, "_popen", None)  # no poll(): see _rebuild()
        if popen is not None and popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signum)


def _end_workers(manager: threading.Thread | None, processes: list[Any]) -> None:
    """Wait a bounded time for an executor that was shut down to join its workers:
    ``manager`` is the thread that ends when they are joined.

    A worker that does not exit when told to (stuck in C code, or a task's signal
    handler) gets SIGTERM, then SIGKILL. Then whatever the tasks left in the workers'
    process groups (forked children, subprocesses) is killed too.
    """
    if manager is not None:
        manager.join(_WORKERS_EXIT_WAIT)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if not manager.is_alive():
                break
            _kill(processes, signum)
            manager.join(_WORKERS_EXIT_WAIT)
    _end_groups(processes)


def _end_groups(processes: list[Any]) -> None:
    """SIGKILL what is left in the process groups of ``processes`` (each worker leads
    one, see ``_worker.init_worker``): children a task started and left running.

    Called right after the workers ended: a group exists while one of its processes
    lives, and its id (the worker's pid) is not given to a new process meanwhile.
    """
    for process in processes:
        pid = getattr(process, "pid", None)
        if pid and pid != os.getpgrp():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


# Dispatchers not closed yet: closed at interpreter exit (see _close_all_at_exit).
_live: set[Dispatcher] = set()
_live_lock = threading.Lock()


def _close_all_at_exit() -> None:
    """Close every pool still open when the program ends, as ``aclose()`` would, but
    waiting for running jobs only :func:`exit_timeout` seconds: queued jobs are dropped,
    running ones are killed past the bound, and the program ends.

    Registered with ``threading._register_atexit``, which runs before the interpreter
    waits for threads and before ``concurrent.futures``' own exit hook (registered
    earlier, run later): that hook would otherwise run every job queued in the
    executors first.
    """
    with _live_lock:
        dispatchers = list(_live)
    # Leaving on Ctrl-C (an uncaught KeyboardInterrupt is in sys.last_value by now):
    # running jobs are killed at once, as a Ctrl-C does to the jobs of a call.
    ctrl_c = isinstance(getattr(sys, "last_value", None), KeyboardInterrupt)
    for dispatcher in dispatchers:
        with contextlib.suppress(Exception):
            dispatcher.close(timeout=0.0 if ctrl_c else exit_timeout())


def _forget_after_fork() -> None:
    """In a child made by ``os.fork()``: forget the parent's pools without touching them.

    The child has copies of the dispatchers, executors and process tables, but not
    their threads nor their processes (which are not its children). Its pools refuse
    work (see :meth:`Dispatcher.submit`), its exit closes nothing, and multiprocessing
    forgets the parent's workers (it would try to join them at exit and fail) and the
    parent's fork server and resource tracker processes (it would try to wait for them
    when the child starts its own workers, and fail with ChildProcessError).
    """
    global _live_lock
    _live_lock = threading.Lock()  # it may have been held by a thread of the parent
    dispatchers = list(_live)
    _live.clear()
    children = getattr(multiprocessing.process, "_children", None)
    wakeups = getattr(cf.process, "_threads_wakeups", None)
    for dispatcher in dispatchers:
        executor = dispatcher._executor
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            if children is not None:
                children.discard(process)
        manager = getattr(executor, "_executor_manager_thread", None)
        if wakeups is not None and manager is not None:
            wakeups.pop(manager, None)
    forkserver = getattr(multiprocessing.forkserver, "_forkserver", None)
    if forkserver is not None and getattr(forkserver, "_forkserver_pid", None) is not None:
        alive_fd = forkserver._forkserver_alive_fd
        forkserver._forkserver_pid = None
        forkserver._forkserver_address = None
        forkserver._forkserver_alive_fd = None
        if alive_fd is not None:  # the parent's fork server must not wait for us
            with contextlib.suppress(OSError):
                os.close(alive_fd)
    tracker = getattr(multiprocessing.resource_tracker, "_resource_tracker", None)
    if tracker is not None:
        tracker._pid = None  # the parent's tracker serves us too: not ours to wait for


os.register_at_fork(after_in_child=_forget_after_fork)

_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_close_all_at_exit)


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
