"""``DispatchState``: the fields a :class:`~aiopar._dispatcher.Dispatcher` is made of,
and which thread touches each.

The dispatcher is one object whose behaviour is spread over modules named for what they
do (feeding, settling, slots, lending, recovery, closing), each a mixin class on top of
this one. The fields are declared here once, with the thread that owns them; the
methods one part calls on another are declared for the type checker only.

Threads: "dispatcher" is the thread "aiopar-dispatch"; "manager" is the executor's
manager thread, which runs done-callbacks; "any" includes the event-loop threads.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import queue
import threading
from typing import TYPE_CHECKING, Any

from . import _arena
from ._job import Job, Outcome

if TYPE_CHECKING:
    from ._job import _Crash

__all__ = ["DispatchState"]


class DispatchState:
    """The fields of a dispatcher (set in ``Dispatcher.__init__``)."""

    # Set once, read by any thread.
    _workers: int
    _ctx: multiprocessing.context.BaseContext
    _init: tuple[bytes | None, bytes | None]
    _max_tasks_per_child: int | None
    _owns_executor: bool
    _retries: int
    _limit: int  # jobs in the executor at most
    _batch_ahead: int  # work items in the executor beyond which small jobs wait to batch
    _borrowing_limit: int  # of which jobs that borrow an arena segment
    _pid: int  # the process that made the dispatcher
    token: str  # names this pool's shared-memory segments
    arena: _arena.Arena | None
    _thread: threading.Thread
    # Any thread puts, the dispatcher thread gets.
    _events: queue.SimpleQueue[tuple[Any, ...]]
    _inbox: collections.deque[Job]  # submitted jobs, not yet taken (any thread appends)
    _inbox_told: bool  # an "inbox" event is on its way (see Dispatcher.submit)
    # Dispatcher thread (the manager thread reads _pending and _closed, and removes a
    # settled job from _inflight).
    _pending: collections.deque[Job]
    _resent: list[Job]  # to run again, ahead of the pending ones
    _inflight: set[Job]  # jobs in the executor
    _items: set[cf.Future[Any]]  # work items in the executor (a batch is one)
    _batch_mode: str  # _batching.MODE, or "off" where batching is not possible
    # Seconds the recent jobs of each function computed, by pickled function.
    _durations: dict[bytes, float]
    _batched_jobs: int  # jobs sent in batches so far (for tests)
    _generation: int  # counts the executors made so far
    _breakages_in_a_row: int
    _closed: bool
    _executor: cf.Executor
    # Bytes of shared memory the last result of each function needed (by pickled
    # function): the size of the arena segment to lend its next job.
    _result_sizes: dict[bytes, int]
    # Under _slot_lock: the shared table (which pid runs the job in each slot) and the
    # free slots.
    _slot_lock: threading.Lock
    _slots: Any
    _free_slots: list[int]

    if TYPE_CHECKING:  # defined by the parts, called across them

        def close(self, timeout: float | None = None) -> None: ...
        def try_cancel(self, job: Job) -> bool: ...
        def _accept(self, job: Job) -> None: ...
        def _accept_inbox(self) -> None: ...
        def _launch(self, job: Job) -> None: ...
        def _entry(self, job: Job) -> tuple[int, bytes, str, Any, Any]: ...
        def _hand_over(
            self, fn: Any, *args: Any, jobs: list[Job]
        ) -> tuple[cf.Future[Any] | None, dict[int, Any]]: ...
        def _take_batch(self, first: Job) -> list[Job]: ...
        def _launch_batch(self, jobs: list[Job]) -> None: ...
        def _unbatch(self, job: Job) -> None: ...
        def _note_duration(self, job: Job) -> None: ...
        def _borrows(self, job: Job) -> bool: ...
        def _small(self, job: Job) -> bool: ...
        def _release_slot(self, job: Job) -> None: ...
        def _on_exec_done(
            self, job: Job, processes: dict[int, Any], exec_future: Outcome, *, pump: bool = True
        ) -> None: ...
        def _load_outcome(self, job: Job, exec_future: Outcome) -> None: ...
        def _settle_success(self, job: Job, exec_future: Outcome) -> bool: ...
        def _settle_batch(self, jobs: list[Job], outcomes: list[tuple[bool, Any]]) -> list[Job]: ...
        def _finish(self, job: Job, exec_future: Outcome, crash: _Crash | None) -> None: ...
        def _note_result_size(self, job: Job) -> None: ...
        def _broken(self, job: Job, crash: _Crash | None) -> None: ...
        def _rebuild(self) -> None: ...
        def _new_executor(self) -> cf.ProcessPoolExecutor: ...
