"""``PoolBase``: a pool's lifecycle, the runner its jobs go to, and what its calls share.

``Pool`` (``_pool.py``) is this plus its options and the public methods; the calls
themselves live in ``_maps.py``, ``_tasks.py`` and ``_reduce.py``, which take a pool of
this class. Layers, top down, none importing upward::

    aiopar.amap / Pool.amap ... ─► _maps, _tasks, _reduce ─► PoolBase ─► Runner
    (public functions, methods)    (make jobs, await them)   (this)     (_runner.py:
                                                                         _dispatcher.py
                                                                         or _inline.py)

Everything here runs in the caller's thread; ``close()`` blocks until the runner has
stopped (``aclose()`` does so in a worker thread).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import signal
from collections.abc import Iterable
from types import TracebackType
from typing import Literal, Self

import anyio

from . import _leaks
from ._dispatcher import Dispatcher
from ._inline import InlineRunner
from ._job import Job
from ._main_module import check_main_module
from ._runner import Runner
from ._waiting import FutureWatcher, wait_all_shielded

__all__ = ["CancelMode", "InlineMode", "PoolBase", "interrupted_by_user"]

CancelMode = Literal["wait", "kill"]
InlineMode = bool | Literal["nopickle"]


def interrupted_by_user(cause: BaseException | None) -> bool:
    """Whether the caller is being stopped by Ctrl-C rather than by a plain cancellation.

    On trio, Ctrl-C arrives as KeyboardInterrupt. ``asyncio.run`` turns the first Ctrl-C
    into a cancellation of the main task and counts it on its runner, whose handler is
    then the SIGINT handler: that count is what we look at.
    """
    if isinstance(cause, KeyboardInterrupt):
        return True
    try:
        handler = signal.getsignal(signal.SIGINT)
    except ValueError:  # not the main thread's interpreter
        return False
    runner = getattr(getattr(handler, "func", None), "__self__", None)
    count = getattr(runner, "_interrupt_count", 0)
    return isinstance(count, int) and count > 0


class PoolBase:
    """The part of :class:`aiopar.Pool` below its public methods (see the module docstring).

    Its fields are set by ``Pool.__init__``.
    """

    workers: int
    start_method: str
    cancel_mode: CancelMode
    _initializer_blob: bytes | None
    _initargs_blob: bytes | None
    _max_tasks_per_child: int | None
    _executor: cf.Executor | None
    _retries: int
    inline: InlineMode
    _dispatcher: Runner | None
    _closed: bool
    concurrency: int | None  # for async def functions; None: 100 (see _coroutine_jobs)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._dispatcher else "not started")
        where = f"inline={self.inline!r}" if self.inline else f"start_method={self.start_method!r}"
        return f"<aiopar.Pool workers={self.workers} {where} {state}>"

    # ── lifecycle ──────────────────────────────────────────────────────────────────

    def open(self) -> None:
        """Start the pool's dispatcher; workers start on first use. Cheap, non-blocking.

        ``async with Pool(...)`` calls this for you.

        Raises:
            RuntimeError: when the main script lacks ``if __name__ == "__main__":``
                (its workers would import it and start work again).
        """
        if self._closed:
            raise RuntimeError("this Pool is closed; make a new one")
        _leaks.pool_opened(self)
        if self._dispatcher is None and self.inline:
            self._dispatcher = InlineRunner(
                pickled=self.inline is True,
                initializer_blob=self._initializer_blob,
                initargs_blob=self._initargs_blob,
                own_state=True,
            )
        if self._dispatcher is None:
            if self._executor is None:
                check_main_module()
            self._dispatcher = Dispatcher(
                workers=self.workers,
                mp_context=multiprocessing.get_context(self.start_method),
                initializer_blob=self._initializer_blob,
                initargs_blob=self._initargs_blob,
                max_tasks_per_child=self._max_tasks_per_child,
                executor=self._executor,
                retries=self._retries,
            )

    def close(self) -> None:
        """Cancel queued jobs, wait for running ones, stop the workers. Blocks."""
        self._closed = True
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.close()

    async def aclose(self) -> None:
        """Close the pool from async code: :meth:`close`, run in a worker thread.

        Cancellation: shielded; the pool is closed even if the caller is cancelled.
        """
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.close)

    async def __aenter__(self) -> Self:
        self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` or :meth:`aclose` was called."""
        return self._closed

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (for monitoring and tests)."""
        return self._dispatcher.worker_pids() if self._dispatcher else []

    def shared_memory_segments(self) -> list[str]:
        """Names of the shared-memory segments the pool keeps for reuse until it closes.

        Arrays of at least 1 MiB are sent to workers through these segments (see
        ``docs/shared-memory.md``); they are unlinked when the pool closes.
        """
        return self._dispatcher.arena_segments() if self._dispatcher else []

    # ── what the methods share ─────────────────────────────────────────────────────

    def _require_dispatcher(self) -> Runner:
        if self._dispatcher is None:
            if self._closed:
                raise RuntimeError("this Pool is closed; make a new one")
            raise RuntimeError(
                "this Pool is not open: use `async with aiopar.Pool(...) as pool:` "
                "(or call pool.open() and later pool.close())"
            )
        return self._dispatcher

    def _check_cancel(self, cancel: object) -> CancelMode | None:
        """Validate a call's ``cancel=`` option; None means the pool's own."""
        if cancel is None:
            return None
        if cancel not in ("wait", "kill"):
            raise ValueError(
                f'cancel must be "wait", "kill" or None (the pool\'s choice), got {cancel!r}'
            )
        if cancel == "kill" and self._executor is not None:
            raise ValueError(
                'cancel="kill" needs the pool\'s own worker processes; it cannot kill the '
                'workers of executor=...; use cancel="wait"'
            )
        return "kill" if cancel == "kill" else "wait"

    def _send(self, job: Job) -> None:
        self._require_dispatcher().submit(job)

    async def _abandon(
        self,
        jobs: Iterable[Job],
        watcher: FutureWatcher | None = None,
        cause: BaseException | None = None,
        cancel: CancelMode | None = None,
    ) -> None:
        """Deal with ``jobs`` whose caller stopped waiting (cancelled, or failed early).

        Jobs not yet started are cancelled and never run. Jobs running in a worker are
        awaited (``cancel="wait"``; results dropped) or their workers killed
        (``cancel="kill"``, and always on Ctrl-C, so that the program stops at once).
        ``cancel`` is the call's own choice; None takes the pool's.
        Shielded from cancellation, so it always completes.
        """
        running = self._stop(jobs, cause, cancel)
        await wait_all_shielded([job.future for job in running], watcher)

    def _stop(
        self, jobs: Iterable[Job], cause: BaseException | None, cancel: CancelMode | None = None
    ) -> list[Job]:
        """The first, non-blocking half of :meth:`_abandon`: cancel ``jobs`` not yet
        started, kill or mark the running ones, and return those still running."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            return [job for job in jobs if not job.future.cancel() and not job.future.done()]
        running = [job for job in jobs if not dispatcher.try_cancel(job)]
        running = [job for job in running if not job.future.done()]
        kill = (cancel or self.cancel_mode) == "kill" or interrupted_by_user(cause)
        for job in running:
            dispatcher.cancel(job, kill=kill)
        return running

    # ── in-process ─────────────────────────────────────────────────────────────────

    def _open_inline(self) -> None:
        """Open this pool to run its jobs in this process, in order (see ``_inline.py``)
        instead of in worker processes."""
        if self._closed:
            raise RuntimeError("this Pool is closed; make a new one")
        if self._dispatcher is None:
            self._dispatcher = InlineRunner()
