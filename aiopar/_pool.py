"""``Pool``: the options of a set of worker processes, and the public methods.

The methods are thin (those of the maps are in ``_pool_maps.py``, a base class): maps
live in ``_maps.py``, tasks in ``_tasks.py``, reductions in ``_reduce.py``,
``.remote()`` in ``_remote.py``; each takes the pool as its first argument. The
lifecycle and what the calls share (the runner, cancelling jobs whose caller stopped
waiting) is ``PoolBase`` in ``_pool_base.py``, below all of them.
Everything here runs in the caller's thread and returns at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar, TypeVarTuple, overload

import cloudpickle

from . import _gather, _reduce, _tasks
from ._chunks import check_count, check_positive
from ._codepickle import pickle_function
from ._coroutine_jobs import check_concurrency
from ._inline import check_inline
from ._options import TaskOptions
from ._pool_base import CancelMode, InlineMode
from ._pool_maps import MapMethods
from ._remote import RemoteFunction
from ._tasks import TaskRef

__all__ = ["Pool"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_NO_INITIAL: Any = _reduce.NO_INITIAL


#: The most worker processes a pool starts (``workers=`` above it is refused).
MAX_WORKERS = 1024


def default_workers() -> int:
    """Number of CPUs this process may use."""
    counter = getattr(os, "process_cpu_count", None)
    if counter is not None:
        count = counter()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()
    return count or 1


def _default_start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


class Pool(MapMethods):
    """A set of worker processes for CPU-bound work, used from async code.

    Use it as an async context manager; leaving the block cancels queued work, waits for
    running work and stops the workers. A pool is not tied to the event loop it was made
    in: one pool can serve calls from later loops and other backends.

    Args:
        workers: number of worker processes; default: the CPUs this process may use;
            at most 1024. Counts here and in the methods take any
            integer (``numpy.int64`` too), not bools or floats.
        initializer: called as ``initializer(*initargs)`` once in each worker; what it
            returns is that worker's state, see :func:`aiopar.worker_state`. An
            ``async def`` initializer is awaited on the worker's event loop (the loop
            its coroutine functions run on); an async generator function runs up to
            its ``yield``: what it yields is the state, and the rest runs when the
            worker ends (when the pool closes), to close what it opened.
        initargs: arguments for ``initializer``.
        start_method: ``"forkserver"`` (default where available) or ``"spawn"``. Plain
            ``"fork"`` is refused: forking a process that runs an event loop and
            threads is unsafe.
        max_tasks_per_child: replace a worker after it ran this many jobs (a chunk of a
            map counts as one job).
        cancel: what a cancelled caller does to its jobs already running in a worker:
            ``"wait"`` lets them finish and drops their results, ``"kill"`` terminates
            their workers at once and starts new ones.
        executor: any :class:`concurrent.futures.Executor` to run on instead of our own
            process pool (for example a Dask ``Client.get_executor()``); it is not
            owned nor shut down by the pool.
        retries: how many times to run again a job whose worker crashed before giving
            up with :class:`aiopar.WorkerCrashedError`.
        inline: True runs the jobs in this process, one at a time, in order, with no
            worker processes: for debugging, profiling and coverage (see
            ``docs/testing.md``). Arguments, results and exceptions still go through
            a pickle round trip, as to a worker and back; ``"nopickle"`` skips it.
            The other options keep their meaning where they can: the initializer
            runs once, in this process; nothing is killed or restarted.
        concurrency: for ``async def`` functions, how many of a call's coroutines one
            worker runs at once (default 100); a call's own ``concurrency=`` overrides
            it. Tasks (``submit``, ``.remote()``) submitted together are sent to a
            worker in batches of up to this many, which run at once.

    Raises:
        TypeError, ValueError: for a bad option, naming it.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        start_method: str | None = None,
        max_tasks_per_child: int | None = None,
        cancel: CancelMode = "wait",
        executor: cf.Executor | None = None,
        retries: int = 0,
        inline: InlineMode = False,
        concurrency: int | None = None,
    ) -> None:
        inline = check_inline(inline, executor)
        self.concurrency: int | None = check_concurrency(concurrency)
        workers = check_positive("workers", workers)
        if workers is not None and workers > MAX_WORKERS:
            raise ValueError(
                f"workers={workers} is more than aiopar starts ({MAX_WORKERS}): each worker "
                "is a whole Python process (tens of MB of memory, its own pipes and file "
                "descriptors), and more processes than CPUs do not make CPU-bound work "
                f"faster; this machine has {default_workers()} CPUs for this process. "
                "Use workers=None (one per CPU) or a number up to "
                f"{MAX_WORKERS}"
            )
        max_tasks_per_child = check_positive("max_tasks_per_child", max_tasks_per_child)
        if cancel not in ("wait", "kill"):
            raise ValueError(f'cancel must be "wait" or "kill", got {cancel!r}')
        retries = check_count("retries", retries)
        if executor is not None:
            if not isinstance(executor, cf.Executor):
                raise TypeError(
                    f"executor must be a concurrent.futures.Executor, got {type(executor).__name__}"
                )
            if cancel == "kill":
                raise ValueError(
                    'cancel="kill" needs the pool\'s own worker processes; it cannot kill '
                    'the workers of executor=...; use cancel="wait"'
                )
            for name, value in (
                ("initializer", initializer),
                ("start_method", start_method),
                ("max_tasks_per_child", max_tasks_per_child),
            ):
                if value is not None:
                    raise ValueError(
                        f"{name} configures our own processes; it cannot be "
                        "combined with executor=..."
                    )
        method = start_method or _default_start_method()
        if method == "fork":
            raise ValueError(
                'start_method="fork" is not supported: forking a process that runs an '
                'event loop and threads is unsafe; use "forkserver" (default) or "spawn"'
            )
        allowed = [m for m in multiprocessing.get_all_start_methods() if m != "fork"]
        if method not in allowed:
            raise ValueError(f"start_method must be one of {allowed!r}, got {start_method!r}")
        if not isinstance(initargs, tuple):
            raise TypeError(f"initargs must be a tuple, got {type(initargs).__name__}")
        self._initializer_blob = (
            pickle_function(initializer, "initializer", initializer=True)
            if initializer is not None
            else None
        )
        self._initargs_blob = bytes(cloudpickle.dumps(initargs)) if initializer else None
        self.workers: int = workers or default_workers()
        self.start_method: str = method
        self.cancel_mode: CancelMode = cancel
        self._max_tasks_per_child = max_tasks_per_child
        self._executor = executor
        self._retries = retries
        self.inline: InlineMode = inline
        self._dispatcher = None
        self._closed = False

    # ── public methods ─────────────────────────────────────────────────────────────

    @overload
    def submit(
        self, func: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any
    ) -> TaskRef[R]: ...
    @overload
    def submit(self, func: Callable[..., R], /, *args: Any, **kwargs: Any) -> TaskRef[R]: ...
    def submit(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskRef[Any]:
        """Schedule ``func(*args, **kwargs)`` in a worker and return a :class:`TaskRef`.

        Returns at once; needs no running event loop. ``func`` may be an ``async def``
        function: its coroutine runs on the worker's event loop, beside up to the
        pool's ``concurrency`` others submitted together. Any TaskRef among the arguments
        (also inside lists, tuples, dicts and sets) is a dependency: the task starts when
        all of them have finished and gets their results in their place. A failed
        dependency fails the task, without running it, with the same exception.
        """
        return _tasks.submit(self, func, args, kwargs)

    async def gather(
        self, *refs_or_awaitables: Awaitable[Any], return_exceptions: bool = False
    ) -> list[Any]:
        """Like :func:`asyncio.gather` for TaskRefs and awaitables; see :func:`aiopar.gather`."""
        return await _gather.gather(*refs_or_awaitables, return_exceptions=return_exceptions)

    @overload
    def remote(self, func: Callable[P, R], **options: Any) -> RemoteFunction[P, R]: ...
    @overload
    def remote(
        self, func: None = None, **options: Any
    ) -> Callable[[Callable[P, R]], RemoteFunction[P, R]]: ...
    def remote(
        self, func: Callable[P, R] | None = None, **options: Any
    ) -> RemoteFunction[P, R] | Callable[[Callable[P, R]], RemoteFunction[P, R]]:
        """Ray-style decorator: ``f.remote(...)`` submits to this pool; ``f(...)`` runs here.

        ``options`` are those of :meth:`aiopar.RemoteFunction.options` but ``pool``.
        """
        if "pool" in options:
            raise TypeError("pool.remote() submits to this pool; it takes no pool= option")
        settings = TaskOptions(pool=self).merged(options)
        if func is None:
            return lambda f: RemoteFunction(f, options=settings)
        return RemoteFunction(func, options=settings)

    @overload
    async def tree_reduce(
        self,
        func: Callable[[T, T], Awaitable[T]],
        items: Iterable[T | Awaitable[T]] | AsyncIterable[T | Awaitable[T]],
        *,
        initial: T = _NO_INITIAL,
        chunksize: int | None = None,
        ordered: bool = True,
        cancel: CancelMode | None = None,
    ) -> T: ...
    @overload
    async def tree_reduce(
        self,
        func: Callable[[T, T], T],
        items: Iterable[T | Awaitable[T]] | AsyncIterable[T | Awaitable[T]],
        *,
        initial: T = _NO_INITIAL,
        chunksize: int | None = None,
        ordered: bool = True,
        cancel: CancelMode | None = None,
    ) -> T: ...
    async def tree_reduce(
        self,
        func: Callable[[Any, Any], Any],
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        initial: Any = _NO_INITIAL,
        chunksize: int | None = None,
        ordered: bool = True,
        cancel: CancelMode | None = None,
    ) -> Any:
        """``functools.reduce(func, items[, initial])`` for associative ``func``, as a tree.

        The depth is ⌈log₂ n⌉ instead of n. Many items are first reduced sequentially
        inside chunks (``chunksize`` items each, automatic by default), then across chunks.
        Items may be TaskRefs or other awaitables. ``ordered=False`` (for a commutative
        ``func``) combines whichever two results are ready first. ``cancel`` is as in
        :meth:`amap`.

        Raises:
            TypeError: for empty ``items`` without ``initial``, as functools.reduce does.

        Cancellation: as :meth:`amap`.
        """
        return await _reduce.tree_reduce(
            self,
            func,
            items,
            initial=initial,
            chunksize=chunksize,
            ordered=ordered,
            cancel=self._check_cancel(cancel),
        )

    def put(self, value: T) -> TaskRef[T]:
        """Store ``value`` once, for any number of tasks; return a finished TaskRef.

        Like ``ray.put``. The ref holds a copy of ``value`` made now; its numpy arrays
        of 1 MiB or more are copied once into this pool's shared memory, and every
        task that gets the ref as an argument (or the arrays it holds) reads that
        memory, without a copy per task. ``await ref`` returns the stored value: its
        arrays are views of that memory. The memory is freed when the ref and those
        arrays are gone, and at the latest when the pool closes.

        Blocks while it copies (about 20 ms per 100 MB): from an event loop, put a
        very big value with ``await anyio.to_thread.run_sync(pool.put, value)``.

        Raises:
            TypeError: when ``value`` cannot be pickled.
        """
        return _tasks.put(self, value)
