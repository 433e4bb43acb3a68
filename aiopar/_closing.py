"""Closing: ending a dispatcher and its workers, at ``close()``, at interpreter exit,
and in a child made by ``os.fork()``.

``Closing._shutdown`` runs in the dispatcher thread: queued jobs are dropped, running
ones awaited (at exit, for a bounded time, then killed), and the executor is shut down
in a thread "aiopar-shutdown" whose join is bounded: workers that do not exit are sent
SIGTERM, then SIGKILL, and what tasks left in the workers' process groups is killed.

``_close_all_at_exit`` runs in the main thread at interpreter exit (a
``threading._register_atexit`` hook); ``_forget_after_fork`` in the child right after
an ``os.fork()``: it drops the parent's dispatchers without touching them.
"""

from __future__ import annotations

import concurrent.futures as cf
import concurrent.futures.process  # noqa: F401  (its exit hook first: see the end)
import contextlib
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.process
import multiprocessing.resource_tracker
import os
import queue
import signal
import sys
import threading
import time
from typing import Any

from . import _shm, _worker
from ._dispatch_state import DispatchState
from ._job import _cancel_error, _set_exception

__all__ = ["EXIT_TIMEOUT", "Closing", "exit_timeout"]

#: Seconds running jobs get to finish when the program ends with pools still open,
#: before their workers are killed; AIOPAR_EXIT_TIMEOUT overrides it.
EXIT_TIMEOUT = 5.0

# Seconds idle workers get to exit when their executor shuts down, before SIGTERM and
# then SIGKILL (they exit at once, unless a task left them unable to).
_WORKERS_EXIT_WAIT = 5.0


class Closing(DispatchState):
    """Shutting one dispatcher down, in its own thread."""

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
            elif event[0] == "inbox":
                self._accept_inbox()
            elif event[0] == "unbatch":
                self._unbatch(event[1])
        if stopper is not None:
            _end_workers(stopper, processes)
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
        self._accept_inbox()  # refused: the pool is closed
        if self.arena is not None:
            self.arena.close()
            _shm.unlink_adopted(self.token)


def _seconds_from_env(name: str, default: float) -> float:
    """A number of seconds from the environment variable ``name`` (``default`` if it is
    unset or not a number >= 0)."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value >= 0 else default


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
_live: set[Closing] = set()
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

# Registered after concurrent.futures.process's own hook (imported above), so that ours
# runs first: hooks run in the reverse order of their registration.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_close_all_at_exit)
