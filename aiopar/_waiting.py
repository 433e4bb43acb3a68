"""Awaiting ``concurrent.futures.Future`` objects from asyncio, uvloop or trio.

A future finishes in another thread (the dispatcher's or the executor's). Its
done-callback must not block and must not touch the loop directly: it appends the
future to a deque and asks the loop, through the loop's own thread-safe non-blocking
call (``loop.call_soon_threadsafe`` on asyncio and uvloop, ``TrioToken.run_sync_soon`` on
trio), to set an :class:`anyio.Event`. If the future is already done when the callback is
added, the callback runs at once in the loop thread, which is just as safe.

Waking a loop costs a system call, a thread switch and a turn of the loop, and the
workers pay for it on a machine whose cores they keep busy, so a watcher wakes its loop
as seldom as it can: futures that finish before the loop has run the last wake-up share
it, and :meth:`FutureWatcher.watch_all` can keep successes silent until the last one.

Nothing here polls, and nothing here is tied to one loop beyond the lifetime of a
:class:`FutureWatcher`, which is made per call.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import functools
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import anyio

from ._future import failed

__all__ = ["FutureWatcher", "wait_all_shielded", "wait_future"]

T = TypeVar("T")


def _current_trio_token() -> Any:
    """The running trio run's token, or ``None`` when this task does not run on trio.

    trio is optional and is only looked at when something has imported it already: a
    program that runs on trio has. Its ``current_trio_token()`` raises ``RuntimeError``
    outside a trio run, so this also answers right for an asyncio loop in a process that
    imported trio for something else.
    """
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


def _threadsafe_scheduler() -> Callable[[Callable[[], object]], None]:
    """A non-blocking way to run a callable on the current event loop from any thread.

    Which loop runs is told by the loops themselves (trio first, as trio's guest mode
    runs inside an asyncio loop), not by the optional ``sniffio`` package.
    """
    token = _current_trio_token()
    if token is not None:
        finished: type[BaseException] = sys.modules["trio"].RunFinishedError

        def schedule_trio(callback: Callable[[], object]) -> None:
            try:
                token.run_sync_soon(callback)
            except finished:
                pass  # the run is over: nobody waits any more

        return schedule_trio
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "aiopar must be awaited inside a running asyncio (or uvloop) or trio event loop"
        ) from None

    def schedule_asyncio(callback: Callable[[], object]) -> None:
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    return schedule_asyncio


class FutureWatcher:
    """Wakes the current event loop whenever one of the watched futures finishes.

    Made inside a coroutine, used by that coroutine only. A future's done-callback
    reaches the watcher through a weak reference: a future never keeps its watcher (and
    the finished futures it holds, with their results) alive.
    """

    def __init__(self) -> None:
        self._schedule = _threadsafe_scheduler()
        self._finished: collections.deque[cf.Future[Any]] = collections.deque()
        self._event: anyio.Event | None = None
        self._lock = threading.Lock()
        self._wake_scheduled = False
        # With watch_all(..., wake_on_success=False): successes not yet seen, all silent
        # until the last one.
        self._silent: set[cf.Future[Any]] = set()

    def watch(self, future: cf.Future[Any]) -> None:
        future.add_done_callback(functools.partial(_on_done, weakref.ref(self)))

    def watch_all(self, futures: Iterable[cf.Future[Any]], *, wake_on_success: bool = True) -> None:
        """Watch ``futures``; with ``wake_on_success=False`` the loop is only woken when
        one of them fails (or is cancelled) or when the last of them is done: a caller
        that needs all results saves a wake-up per success."""
        futures = list(futures)
        if not wake_on_success:
            self._silent.update(futures)
        callback = functools.partial(_on_done, weakref.ref(self))
        for future in futures:
            future.add_done_callback(callback)

    def _on_done(self, future: cf.Future[Any]) -> None:
        # In the thread that finished the future (or in the loop's, if already done).
        with self._lock:
            self._finished.append(future)
            if future in self._silent:
                self._silent.discard(future)
                if self._silent and not failed(future):
                    return
            if self._wake_scheduled:
                return  # the loop will see this one too
            self._wake_scheduled = True
        self._schedule(self._wake)

    def _wake(self) -> None:
        with self._lock:
            self._wake_scheduled = False
        if self._event is not None:
            self._event.set()

    async def next_finished(self) -> cf.Future[Any]:
        """Wait for a watched future to finish; return them in the order they finished.

        Cancellation: this only waits, so cancelling it leaves the futures alone.
        """
        while not self._finished:
            self._event = anyio.Event()
            if self._finished:
                break
            await self._event.wait()
        return self._finished.popleft()

    def has_finished(self) -> bool:
        """Whether :meth:`next_finished` would return without waiting."""
        return bool(self._finished)

    def forget_finished(self) -> None:
        """Drop the futures finished so far, unread: for a caller that reads its
        futures in its own order with :meth:`wait_for`, and would never read them."""
        with self._lock:
            self._finished.clear()

    async def wait_for(self, future: cf.Future[Any]) -> None:
        """Wait until ``future`` (which must be watched) is done."""
        while not future.done():
            await self.next_finished()

    async def wait_all(self, futures: Iterable[cf.Future[Any]]) -> None:
        """Wait until every one of ``futures`` (all watched) is done."""
        for future in futures:
            await self.wait_for(future)


async def wait_all_shielded(
    futures: Sequence[cf.Future[Any]], watcher: FutureWatcher | None = None
) -> None:
    """Wait until every one of ``futures`` is done, shielded from cancellation.

    ``watcher``: one that already watches them all; by default a new one.
    """
    if not futures:
        return
    with anyio.CancelScope(shield=True):
        if watcher is None:
            watcher = FutureWatcher()
            watcher.watch_all(futures)
        await watcher.wait_all(futures)


def _on_done(watcher: weakref.ref[FutureWatcher], future: cf.Future[Any]) -> None:
    alive = watcher()
    if alive is not None:
        alive._on_done(future)


async def wait_future(future: cf.Future[T]) -> T:
    """Wait for ``future`` and return its result (or raise its exception).

    Cancellation: only the waiting is cancelled; the future is left as it is.
    """
    if not future.done():
        watcher = FutureWatcher()
        watcher.watch(future)
        await watcher.wait_for(future)
    else:
        await anyio.lowlevel.checkpoint()
    return future.result()
