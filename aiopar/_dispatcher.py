"""Owning the executor: feeding it jobs, surviving crashes, killing on cancel.

The path of one job::

    event-loop thread                 dispatcher thread "aiopar-dispatch"     executor + workers
    ─────────────────                 ───────────────────────────────────     ──────────────────
    Dispatcher.submit(job) ─► inbox ─► pending deque (one wake-up per burst of submits)
      (non-blocking)                     │ at most 32 work items per worker in the executor
                                         │ (2 per worker for jobs that borrow a segment,
                                         │ or for small jobs, which then wait to batch);
                                         │ small jobs, when many wait, several to an item
                                         ├──► Executor.submit(run_job, slot, func, kind,
                                         │                    Outbound(payload))
                                         │    or run_batch([...]) (see _batching.py)
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
(``_envelopes.Packed``, ``_carried.Carried``): they are rebuilt in the thread that settles the
job, so one that cannot be rebuilt here fails its job alone instead of breaking the pool.

Closing (``close()``, and at interpreter exit) runs in the dispatcher thread too:
queued jobs are dropped, running ones awaited within a bound, the workers ended.

This module holds the ``Dispatcher`` itself: its fields, the calls other threads make,
and the dispatcher thread's event loop. Each mechanism lives in a module of its own,
a part (mixin) of the class over the fields of ``_dispatch_state.DispatchState``:

=================  ==============================================================
``_feeding.py``    accepting jobs, launching them into the executor, done-callbacks
``_batching.py``   many small jobs in one work item, each settled on its own
``_settling.py``   rebuilding results and settling each job's future
``_slots.py``      the slot table: skipping a job no worker started, kill on cancel
``_lending.py``    lending arena segments for big results
``_recovery.py``   rebuilding a broken executor, resending its jobs, retries
``_closing.py``    close, interpreter exit, ``os.fork()``
=================  ==============================================================
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import os
import queue
import secrets
import threading
from typing import Any

from . import _arena, _batching, _closing
from ._batching import Batching
from ._closing import Closing
from ._feeding import AHEAD_BORROWING_PER_WORKER, AHEAD_PER_WORKER, Feeding
from ._job import Job, _set_exception
from ._lending import Lending
from ._recovery import Recovery
from ._settling import Settling
from ._slots import Slots

__all__ = ["Dispatcher", "Job"]

# Slots in the table per work item allowed in the executor: room for batches.
_SLOTS_PER_ITEM = 4

# This process's id, renewed in a child made by os.fork(): read by every submit, which
# so makes no system call to tell a forked copy of the pool's process.
_this_pid = os.getpid()


def _renew_pid() -> None:
    global _this_pid
    _this_pid = os.getpid()


os.register_at_fork(after_in_child=_renew_pid)


class Dispatcher(Feeding, Batching, Settling, Slots, Lending, Recovery, Closing):
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
        self._limit = AHEAD_PER_WORKER * workers
        self._batch_ahead = _batching.BATCH_AHEAD_PER_WORKER * workers
        self._borrowing_limit = AHEAD_BORROWING_PER_WORKER * workers
        self._events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._pending: collections.deque[Job] = collections.deque()
        self._resent: list[Job] = []  # to run again, ahead of the pending ones
        self._inflight: set[Job] = set()
        self._inbox: collections.deque[Job] = collections.deque()  # not yet taken
        self._inbox_told = False  # an "inbox" event is on its way to the dispatcher thread
        self._items = set()
        self._durations = {}
        self._batched_jobs = 0
        batching = self._owns_executor and max_tasks_per_child is None
        self._batch_mode = _batching.MODE if batching else "off"
        self._generation = 0
        self._breakages_in_a_row = 0
        self._closed = False
        self._pid = os.getpid()
        # Guards job.slot and the slot table against try_cancel() from other threads.
        # Held for a few reads and writes only, never while starting processes.
        self._slot_lock = threading.Lock()
        self.token = secrets.token_hex(4)
        self.arena = _arena.Arena(self.token) if executor is None else None
        # Bytes of shared memory the last result of each function needed (by pickled
        # function): the size of the arena segment to lend its next job.
        self._result_sizes: dict[bytes, int] = {}
        if self._owns_executor:
            # Batches take more slots than work items (see _batching.py).
            slots = self._limit * _SLOTS_PER_ITEM
            self._slots = mp_context.RawArray("q", slots)
            self._free_slots = list(range(slots))
            self._executor = self._new_executor()
        else:
            assert executor is not None
            self._slots = None
            self._free_slots = []
            self._executor = executor
        self._thread = threading.Thread(target=self._run, name="aiopar-dispatch", daemon=True)
        self._thread.start()
        with _closing._live_lock:  # rebound after a fork: looked up each time
            _closing._live.add(self)

    # ── called from any thread ─────────────────────────────────────────────────────

    def submit(self, job: Job) -> None:
        """Queue ``job``; its ``future`` receives the result. Never blocks.

        Raises:
            RuntimeError: in a process forked (``os.fork()``) from the one that made
                this dispatcher: its thread and workers are not this process's.
        """
        if _this_pid != self._pid:
            raise RuntimeError(
                f"this pool was started in process {self._pid}, and this process is a "
                "copy of it made by os.fork(): its workers belong to the parent; make a "
                "new aiopar.Pool in this process (the module-level functions do so)"
            )
        # Jobs submitted while the dispatcher thread has not yet taken the inbox join it
        # without waking that thread again: a burst of submits costs one wake-up (and
        # one handover of the GIL), not one per job. No lock: a submitter that held one
        # when the GIL passed to another thread would make every other submitter (the
        # settling threads send dependents too) sleep on it and then wait for the GIL
        # again. deque.append is atomic, and the dispatcher clears the flag *before* it
        # empties the inbox, so a job appended after that is either taken by that pass
        # or announced by its submitter (at worst one event finds the inbox empty).
        self._inbox.append(job)
        if not self._inbox_told:
            self._inbox_told = True
            self._events.put(("inbox",))

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
                if what == "inbox":
                    self._accept_inbox()
                elif what == "done":
                    self._finish(event[1], event[2], event[3])
                elif what == "cancel":
                    self._cancel(event[1], event[2])
                elif what == "unbatch":
                    self._unbatch(event[1])
                elif what == "close":
                    self._shutdown(event[1])
                    return
                self._pump()
            except Exception as exc:  # a bug of ours: fail that job, keep serving the rest
                if what in ("done", "cancel", "unbatch"):
                    _set_exception(event[1].future, exc)
            # Waiting for the next event must not keep this one's job (and its result)
            # alive: the caller's arrays free their shared memory when they die.
            del event
