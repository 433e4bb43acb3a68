"""Running a pool's jobs in this very process, one at a time, in the order they came.

Two users: ``Pool(inline=True)`` (and the default pool under ``AIOPAR_INLINE=1``), for
debuggers, profilers, coverage and tests; and, inside a worker process, the default
pool: a task that calls ``aiopar.amap`` or ``aiopar.submit`` gets its answers from its
own process, instead of starting a pool of workers of its own (one per worker: N²
processes, which outlive the task and keep the outer pool from closing).

The path of one job, all in the thread that submits it::

    InlineRunner.submit(job) ──► queue ──► on a coming turn of the event loop running
                                   │       in this thread, one job a turn, with quiet
                                   │       turns between jobs: cancelling the caller in
                                   │       between drops the queued jobs
                                   └─────► at once when no loop runs here, or when a job
                                           of ours submits it (a nested call)
    run: the pool's initializer, once ─► arguments pickled and unpickled ─►
    _worker.run_job ─► the result pickled and unpickled ─► job.future

A job of an ``async def`` function runs on this process's event loop for coroutine
jobs (a thread of its own, as in a worker: ``_worker_loop.py``), and this thread waits
for it; an async initializer is awaited there too, and an async generator one is
resumed when the pool closes.

Arguments and results cross a pickle round trip, as they would on their way to a
worker and back, so a function that works here works in a worker too (``pickled=False``,
``Pool(inline="nopickle")``, hands the objects themselves). During a job,
``aiopar.worker_state()`` returns what the pool's initializer returned. A job blocks
the thread (and the event loop) that runs it: this is for nested calls, debugging and
tests, not for speed.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import functools
import os
import pickle
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal

from . import _carried, _envelopes, _worker, _worker_coroutines, _worker_loop
from ._job import Job

__all__ = ["InlineRunner", "check_inline", "inline_from_environment"]

#: The environment variable that makes the default pool run in-process.
ENVIRONMENT_VARIABLE = "AIOPAR_INLINE"


def check_inline(inline: object, executor: object) -> bool | Literal["nopickle"]:
    """Validate ``Pool(inline=...)``.

    Raises:
        ValueError: for a value other than True, False or "nopickle", or inline
            combined with ``executor=``.
    """
    if inline is not True and inline is not False and inline != "nopickle":
        raise ValueError(
            'inline must be True (jobs run in this process), "nopickle" (in this '
            f"process, without the pickle round trip) or False (worker processes), got {inline!r}"
        )
    if inline and executor is not None:
        raise ValueError(
            "inline=... runs the jobs in this process and executor=... runs them on that "
            "executor: give one of them"
        )
    return "nopickle" if inline == "nopickle" else bool(inline)


def inline_from_environment() -> bool | Literal["nopickle"]:
    """What ``AIOPAR_INLINE`` asks of the default pool: unset, empty or ``0``: worker
    processes; ``1``: in-process; ``nopickle``: in-process without the pickle round trip.

    Raises:
        ValueError: for any other value, naming the variable.
    """
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    if value == "nopickle":
        return "nopickle"
    raise ValueError(
        f"{ENVIRONMENT_VARIABLE}={os.environ[ENVIRONMENT_VARIABLE]!r} is not understood: use 1 "
        "(the default pool runs jobs in this process), nopickle (the same without the "
        "pickle round trip) or 0 (worker processes)"
    )


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


_NO_STATE: Any = object()

#: Turns of the event loop left free between two jobs (see InlineRunner._turn).
QUIET_TURNS = 2


def _cancel_error(job: Job) -> cf.CancelledError:
    return cf.CancelledError(f"{job.label} was cancelled")


class InlineRunner:
    """Runs jobs in the calling process, in order; see the module docstring.

    Thread-safe: jobs may be submitted from any thread; each runs in the thread that
    submitted it (a task whose dependencies finish in another thread runs there).
    """

    def __init__(
        self,
        *,
        pickled: bool = True,
        initializer_blob: bytes | None = None,
        initargs_blob: bytes | None = None,
        own_state: bool = False,
    ) -> None:
        """Args:
        pickled: send arguments and results (and exceptions) through a pickle round
            trip, as a worker would; False hands the objects themselves.
        initializer_blob, initargs_blob: the pool's pickled initializer and its
            arguments, run once, before the first job.
        own_state: whether :func:`aiopar.worker_state` returns this runner's state
            (the initializer's result, or None) during its jobs; False (the default
            pool inside a worker) leaves it to the worker's own.
        """
        self._queue: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()
        self._local = threading.local()  # .running: the job this thread runs now
        self._turn_scheduled = False
        self._closed = False
        self._pickled = pickled
        self._own_state = own_state
        self._initializer: tuple[bytes, bytes | None] | None = (
            (initializer_blob, initargs_blob) if initializer_blob is not None else None
        )
        self._init_lock = threading.Lock()
        self._closing: Any = None  # an async generator initializer, resumed at close
        self._state: Any = None
        self._init_error: BaseException | None = None

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
        """Run the queue on a coming turn of the event loop, or now when no loop runs
        here."""
        schedule = _loop_scheduler()
        if schedule is not None:
            try:
                schedule(functools.partial(self._turn, schedule, QUIET_TURNS))
            except Exception:  # the loop is closing: nobody will run the queue but us
                pass
            else:
                return
        while self._next():
            pass

    def _turn(self, schedule: Callable[[Callable[[], object]], object], wait: int) -> None:
        """After ``wait`` more turns of the loop, run the first queued job; come back
        for the others.

        The turns in between are quiet: no job finishes in them, so a task waiting
        for our jobs is not woken, and a cancellation that waits for its task to be
        asleep (anyio's on asyncio) reaches it. Without them, a job finishing at
        every turn could keep a cancelled map running to its end.
        """
        if wait > 0:
            try:
                schedule(functools.partial(self._turn, schedule, wait - 1))
            except Exception:  # the loop is closing
                self._turn(schedule, 0)
            return
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
        previous_state = getattr(_worker.inline_state, "value", _NO_STATE)
        self._local.running = job
        context_state = None
        failure: BaseException | None = None
        result: Any = None
        try:
            self._initialize()
            if self._own_state:
                _worker.inline_state.value = self._state
                # for a coroutine job, which runs in the loop's thread
                context_state = _worker_loop.inline_state.set(self._state)
            data: object = job.payload
            if self._pickled:
                # A round trip through pickle, as on the way to a worker and back: the
                # same errors for what cannot be sent, and copies, never shared objects.
                outbound = _envelopes.Outbound(
                    data, None, [], kind=job.kind, label=job.label, first_item=job.first_item
                )
                data = pickle.loads(pickle.dumps(outbound, protocol=pickle.HIGHEST_PROTOCOL))
            job.payload = None
            job.elapsed, value = _worker.run_job(-1, job.func_blob, job.kind, data)
            if self._pickled:
                value = pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
            result = _envelopes.unwrap(value)
        except _carried.Carried as carried:  # the task's exception (SystemExit: TaskExited)
            failure = self._task_error(carried)
        except BaseException as exc:  # KeyboardInterrupt too: raised where it is awaited
            failure = exc
        finally:
            self._local.running = previous
            if context_state is not None:
                _worker_loop.inline_state.reset(context_state)
            if previous_state is _NO_STATE:
                _worker.inline_state.__dict__.pop("value", None)
            else:
                _worker.inline_state.value = previous_state
        # Only now: the tasks that depend on this one are submitted by the future's
        # callbacks, and must be queued, not run inside this call (a long chain of
        # dependents would otherwise nest one call per task).
        if failure is not None:
            future.set_exception(failure)
        elif job.cancel_requested:
            future.set_exception(_cancel_error(job))
        else:
            future.set_result(result)

    def _initialize(self) -> None:
        """Run the pool's initializer, once, before the first job (as each worker does
        when it starts); if it failed, fail this job as a worker's jobs fail."""
        with self._init_lock:
            if self._initializer is not None:
                initializer_blob, initargs_blob = self._initializer
                self._initializer = None
                try:
                    initializer = pickle.loads(initializer_blob)
                    initargs = pickle.loads(initargs_blob) if initargs_blob is not None else ()
                    if _worker_coroutines.is_async(initializer):  # on the loop of coroutine jobs
                        loop = _worker_loop.loop_thread()
                        self._state, self._closing = loop.initialize(
                            initializer, initargs, None, keep_closing=False
                        )
                    else:
                        self._state = initializer(*initargs)
                except BaseException as exc:
                    self._init_error = exc
        if self._init_error is not None:
            raise _worker.initializer_failed(self._init_error)

    def _task_error(self, carried: _carried.Carried) -> BaseException:
        """The exception a task raised, as its caller gets it.

        Pickled mode: the type a worker would send back (an exception that cannot be
        pickled becomes a :class:`aiopar.RemoteError`), but the exception object
        itself when it would come back whole, so its traceback leads into the task.
        Ctrl-C during a job stops the program, not only that task.
        """
        if isinstance(carried.__context__, KeyboardInterrupt):
            return carried.__context__
        exc = carried.load()
        if not self._pickled:
            return exc
        try:
            copy = pickle.loads(pickle.dumps(carried, protocol=pickle.HIGHEST_PROTOCOL)).load()
        except Exception as error:  # pragma: no cover - Carried pickles by design
            return error
        return exc if type(copy) is type(exc) else copy

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
        """Cancel the queued jobs; refuse new ones; end an async generator initializer
        (blocks while it runs, a few seconds at most)."""
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
        for job in queued:
            job.future.cancel()
        with self._init_lock:
            closing, self._closing = self._closing, None
        if closing is not None:
            _worker_loop.loop_thread().finish([closing])

    def arena_segments(self) -> list[str]:
        return []

    def worker_pids(self) -> list[int]:
        return []
