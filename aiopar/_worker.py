"""What runs inside a worker process.

This module is imported by every worker at start-up, so it imports nothing heavy: no
anyio, no asyncio, no numpy (cloudpickle is imported only to unpickle a function that
needed it, or to pickle a result that plain pickle refuses).

A job reaches :func:`run_job` as ``(slot, func_blob, kind, payload)``:

* ``slot`` indexes a table shared with the parent (a ``RawArray`` of process ids). The
  worker writes its pid there on start, so the parent knows which process runs which job:
  that is how a crash is pinned on one job, and how ``cancel="kill"`` finds its target.
  The parent writes :data:`SLOT_CANCELLED` there to cancel a job that has not started.
* ``func_blob`` is the cloudpickled function, unpickled once and cached.
* ``kind`` says how to call it (``CALL``, ``MAP``, ``REDUCE``: see ``_envelopes.py``).
* ``payload`` arrives wrapped in an ``_envelopes.Outbound``, and the result goes back
  wrapped too (``_envelopes.Result``); an exception as a ``_carried.Carried``.

Also here: the worker's start-up (:func:`init_worker`: signals, process group, parent
watch, the user's initializer) and its state (:func:`worker_state`). Everything runs in
the worker's main thread, but for the threads that watch the parent process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from . import _worker_loop
from ._carried import Carried, _as_exception, _portable_exception
from ._envelopes import CALL, MAP, REDUCE, Portable, Result, unwrap
from ._worker_coroutines import coroutine, is_async
from ._worker_loop import OnLoop

__all__ = ["worker_state"]


SLOT_FREE = 0
SLOT_CANCELLED = -1
SLOT_DONE = -2  # a job of a batch that finished (see _worker_batch.py)

#: Returned instead of a result when the parent cancelled a job before it started.
SKIPPED = "aiopar:skipped"
#: Results sent back as they are, not wrapped in a ``Result``: numbers, bytes and None
#: hold no array for shared memory, always pickle, and unpickle without running code.
#: Not str, which could be mistaken for :data:`SKIPPED`.
RAW_RESULTS = frozenset({int, float, complex, bool, bytes, type(None)})


class _Unset:
    def __repr__(self) -> str:
        return "<not in a worker>"


_NOT_IN_WORKER: Any = _Unset()
_state: Any = _NOT_IN_WORKER
_init_error: BaseException | None = None
_worker_pid: int | None = None  # set in the worker process itself, by init_worker
_slots: Any = None
_func_cache: dict[bytes, Any] = {}
# The result segment of the latest job: removed if the main process dies before it
# could adopt it (it registers the names it adopts with the resource tracker).
_last_result_segment: str | None = None
# .value: the state of the in-process pool whose job this thread runs (see _inline.py)
inline_state = threading.local()
_FUNC_CACHE_SIZE = 64


def worker_state() -> Any:
    """Return what the pool's ``initializer`` returned in this worker process.

    Call it from a function that runs in a worker: it is how tasks reach a model, a
    connection or a file that each worker loads once. Returns ``None`` when the pool has
    no initializer. In a job of an in-process pool (``Pool(inline=True)``) it returns
    what that pool's initializer returned, once, in this process.

    Raises:
        RuntimeError: when called outside an aiopar worker process.
    """
    state = getattr(inline_state, "value", _NOT_IN_WORKER)
    if state is not _NOT_IN_WORKER:
        return state
    state = _worker_loop.inline_state.get(_NOT_IN_WORKER)  # a coroutine job of one
    if state is not _NOT_IN_WORKER:
        return state
    if _state is _NOT_IN_WORKER:
        raise RuntimeError(
            "aiopar.worker_state() was called outside a worker: call it from a function "
            "that runs in the pool (for example one passed to submit() or amap())"
        )
    return _state


def in_worker() -> bool:
    """Whether this process is an aiopar worker (its initializer has run)."""
    return _state is not _NOT_IN_WORKER


def init_worker(
    slots: Any,
    main_pid: int,
    parent_sys_path: Sequence[str],
    initializer_blob: bytes | None,
    initargs_blob: bytes | None,
    start_timeout: float | None = None,
) -> None:
    """Prepare a new worker: signals, import path, parent watch, user initializer.

    ``start_timeout``: seconds the user's initializer may take; past them it is
    interrupted and every job of this worker fails, naming it.
    """
    global _state, _slots, _init_error, _worker_pid
    _worker_pid = os.getpid()
    # Ctrl-C goes to the whole process group; the parent decides what happens, so the
    # workers must not each print a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # How the parent cancels a running coroutine job (see _worker_loop.py); harmless
    # while no coroutine runs.
    signal.signal(signal.SIGUSR1, _worker_loop.on_cancel_signal)
    # A group of our own: what a task leaves running (a forked child, a subprocess) is
    # in it, and the pool ends it with the worker (see _closing.py, _end_groups).
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _leave_without_waiting_for_threads()
    _keep_freed_memory()
    for entry in parent_sys_path:
        if entry not in sys.path:
            sys.path.append(entry)
    _slots = slots
    _start_parent_watch(main_pid)
    _state = None
    if initializer_blob is not None:
        name = "initializer"
        try:
            initializer = pickle.loads(initializer_blob)
            name = f"initializer={getattr(initializer, '__qualname__', repr(initializer))}"
            initargs = pickle.loads(initargs_blob) if initargs_blob is not None else ()
            if is_async(initializer):  # awaited on the worker's loop, see _worker_loop.py
                loop = _worker_loop.loop_thread()
                _state, _ = loop.initialize(initializer, initargs, start_timeout)
            else:
                with _deadline(start_timeout, name):
                    _state = initializer(*initargs)
        except BaseException as exc:  # reported to every job, see run_job
            _init_error = exc if not isinstance(exc, _StartTimeout) else TimeoutError(str(exc))


class _StartTimeout(BaseException):
    """Raised in the initializer when it overruns the start-up deadline (a
    BaseException, so that the initializer's own ``except Exception`` cannot keep it)."""


@contextlib.contextmanager
def _deadline(seconds: float | None, name: str) -> Iterator[None]:
    """Interrupt the block (with SIGALRM) after ``seconds``; no limit for None."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def overrun(signum: int, frame: Any) -> None:
        raise _StartTimeout(
            f"{name} did not return within the start-up deadline of {seconds:g} s "
            "(AIOPAR_START_TIMEOUT); the workers cannot run any task"
        )

    previous = signal.signal(signal.SIGALRM, overrun)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _leave_without_waiting_for_threads() -> None:
    """When this worker is done, exit without waiting for threads a task left running.

    A process waits for its non-daemon threads before it exits: one left behind by a
    task would keep this worker, and the pool's close() that joins it, waiting forever.
    ``threading._register_atexit`` hooks run before that wait (and after
    multiprocessing's own exit handlers), so this one exits there.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        return

    def leave() -> None:
        if os.getpid() != _worker_pid:
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)

    with contextlib.suppress(RuntimeError):
        register(leave)


# glibc's mallopt parameters, and where its own adaptive thresholds end up once it has
# seen big blocks freed: blocks up to 32 MiB come from the heap, and up to 64 MiB of
# free heap is kept rather than given back to the system.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 64 << 20


def _keep_freed_memory() -> None:
    """Let numpy's temporaries reuse memory this worker already has.

    A worker runs the same kind of function over and over, and numpy's temporaries for
    a piece of ``amap_chunks`` (16 MiB by default) are freed at the end of each call.
    With glibc's starting thresholds they go back to the system and the next call gets
    fresh pages: a page fault and a cleared page every 4 KiB (measured: 1,466 faults per
    ``vec`` over 16 MB; on a VM that returns freed memory to its host, also stalls of
    the whole machine). Starting where glibc's adaptive thresholds end up makes those
    calls fault-free. Other C libraries: nothing happens.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    except (OSError, AttributeError):
        pass


def _start_parent_watch(main_pid: int) -> None:
    """Exit this worker when the process that owns the pool is gone (even after SIGKILL).

    Watching our parent is not enough under forkserver: the forkserver outlives the
    main process as long as any of its children holds the "alive" pipe it hands them.
    """
    parent = os.getppid()
    try:
        # Readable once the main process has terminated (a zombie counts): no polling.
        main_fd = os.pidfd_open(main_pid)
    except (AttributeError, OSError):
        main_fd = None

    def wait_for_main() -> None:
        import select

        assert main_fd is not None
        select.select([main_fd], [], [])
        _exit_orphaned()

    if main_fd is not None:
        threading.Thread(target=wait_for_main, name="aiopar-main-watch", daemon=True).start()

    def main_is_gone() -> bool:
        try:
            os.kill(main_pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent or main_is_gone():
                _exit_orphaned()

    threading.Thread(target=watch, name="aiopar-parent-watch", daemon=True).start()


def _exit_orphaned() -> None:
    """The main process is gone: remove what only we could remove, and exit."""
    if _last_result_segment is not None:
        from . import _segments

        _segments.unlink(_last_result_segment)
    os._exit(1)


def _load_func(blob: bytes) -> Any:
    """The function a job's pickle holds (an :class:`OnLoop` for an async def), cached."""
    func = _func_cache.get(blob)
    if func is None:
        func = pickle.loads(blob)
        if len(_func_cache) >= _FUNC_CACHE_SIZE:
            _func_cache.pop(next(iter(_func_cache)))
        _func_cache[blob] = func
    return func


def run_job(
    slot: int,
    func_blob: bytes,
    kind: str,
    payload: object,
    shm: tuple[str, Any, str, Any] | None = None,
) -> tuple[float, object]:
    """Run one job in this worker; return ``(seconds spent computing, wrapped result)``.

    ``shm`` is ``(result segment name, destination, pool token, loan)`` when results
    may travel through shared memory (see ``_packing.py``).

    A process a task forked (``os.fork()``) that comes back here is no worker of the
    pool: it exits at once instead of going back to the executor's loop, where it would
    take jobs (and the pool's stop signals) meant for the workers.
    """
    try:
        return _run_job(slot, func_blob, kind, payload, shm)
    finally:
        if _worker_pid is not None and os.getpid() != _worker_pid:
            os._exit(0)


def initializer_failed(error: BaseException) -> RuntimeError:
    """The error every job gets in a worker whose initializer raised ``error``."""
    failure = RuntimeError(
        "the pool's initializer failed in this worker, so no task can run "
        f"({type(error).__name__}: {error})"
    )
    failure.__cause__ = _portable_exception(error)
    failure.__suppress_context__ = True
    return failure


def _run_job(
    slot: int,
    func_blob: bytes,
    kind: str,
    payload: object,
    shm: tuple[str, Any, str, Any] | None,
) -> tuple[float, object]:
    data = prepare(slot, payload, shm)
    if data is _SKIP:
        return (0.0, SKIPPED)
    try:
        func = _load_func(func_blob)
        start = time.perf_counter()
        if type(func) is OnLoop:
            job = coroutine(_load_func(func.blob), func.concurrency, kind, data)
            result = _worker_loop.loop_thread().run(job, slot, _slots)
        elif kind == CALL:
            args, kwargs = data
            result = func(*args, **kwargs)
        elif kind == MAP:
            result = [func(item) for item in data]
        elif kind == REDUCE:
            result = functools.reduce(func, data)
        else:
            raise ValueError(f"unknown job kind {kind!r}")
        elapsed = time.perf_counter() - start
    except _worker_loop.CancelledByCaller:
        return (0.0, SKIPPED)
    except BaseException as exc:
        raise Carried(_as_exception(exc)).with_traceback(exc.__traceback__) from None
    if type(result) in RAW_RESULTS:  # the common case, without a call of pack()
        return (elapsed, result)
    return (elapsed, pack(func, result, shm))


_SKIP: Any = object()


def prepare(slot: int, payload: object, shm: tuple[str, Any, str, Any] | None) -> Any:
    """Start a job: note its result segment, claim its slot, load its arguments.

    Returns the loaded payload, or ``_SKIP`` for a job the parent cancelled before it
    started.

    Raises:
        RuntimeError: the initializer failed in this worker, or the arguments do not load.
    """
    global _last_result_segment
    if shm is not None:
        _last_result_segment = shm[0]
    if _slots is not None and slot >= 0:
        if _slots[slot] == SLOT_CANCELLED:
            return _SKIP
        _slots[slot] = os.getpid()
    if _init_error is not None:
        raise initializer_failed(_init_error)
    try:
        data: Any = unwrap(payload)
    except Exception as exc:
        data = exc
    if isinstance(data, BaseException) or type(data).__name__ == "LoadFailed":
        error = getattr(data, "error", data)  # see _packing.LoadFailed
        raise RuntimeError(
            "the worker could not load this job's arguments "
            f"({type(error).__name__}: {error}); is every class they use importable in "
            "the workers (defined in a module, not only in the parent)?"
        )
    return data


def pack(func: Any, result: Any, shm: tuple[str, Any, str, Any] | None) -> object:
    """A job's result as it is sent back: as is, or wrapped (see ``_envelopes.py``)."""
    if type(result) in RAW_RESULTS:  # pickles as is, and loads without running any code
        return result
    name = func.name if type(func) is OnLoop else getattr(func, "__qualname__", None)
    name = name or type(func).__name__
    first = result[0] if type(result) is list and result else result
    if hasattr(first, "__await__") and hasattr(first, "close"):  # coroutines, not results
        for each in result if type(result) is list else [result]:
            getattr(each, "close", lambda: None)()
        raise TypeError(
            f"{name} returned a coroutine instead of a result: it is a plain def that calls "
            "an async def (a lambda, a wrapper); pass the async def function itself, or "
            "make the wrapper an async def, and the worker awaits it on its event loop"
        )
    what = f"the result of {name}"
    if shm is not None:
        return Result(result, *shm, what=what)
    return Portable(result, what)
