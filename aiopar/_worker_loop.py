"""The event loop a worker keeps for coroutine functions (``async def``).

Imported by every worker at start-up (with ``_worker.py``), so it imports nothing heavy:
asyncio, and uvloop when it is installed, only when the first coroutine job comes. A
worker that only ever runs plain functions starts no loop and no thread.

A job whose function is an ``async def`` carries an :class:`OnLoop` in place of the
function: the function's own pickle and the call's ``concurrency``. The worker's main
thread, where the executor runs each job, hands the job's coroutine to the loop's thread
and waits for its answer::

    main thread (the executor's job)      thread "aiopar-worker-loop" (started on first use,
    ────────────────────────────────      kept for the worker's lifetime)
    _worker.run_job ─► run(...) ────────► the job's coroutine, as a task:
      waits ◄─────────────────────────────   CALL    await func(*args, **kwargs)
                                             MAP     up to `concurrency` items at once
                                             REDUCE  one step after the other
    _worker_batch.run_batch ─► run_many ─► a batch of tasks, all at once (_batching.py
                                           sends at most `concurrency` of them)
    SIGUSR1 ─► on_cancel_signal ─────────► cancel the tasks of each job whose slot the
      (main thread, between two waits)      parent marked SLOT_CANCEL_RUNNING

Cancellation: to cancel a running coroutine job without killing its worker, the parent
writes :data:`SLOT_CANCEL_RUNNING` in the job's slot and sends the worker SIGUSR1 (see
``_slots.py``). The handler only wakes the loop; the loop cancels the tasks of the
marked jobs (they see ``CancelledError``, their ``finally`` blocks run) and the job
comes back as skipped. A job that starts after its slot was marked is cancelled at once.

The loop keeps running between jobs, so what an initializer opened on it (an
``aiohttp.ClientSession`` and its connection pool) stays usable. An ``async def``
initializer is awaited there; an async generator initializer runs to its ``yield``
(what it yields is the worker's state) and is resumed, to close what it opened, when
the worker ends (a hook that runs before the worker process exits).

The same loop serves the in-process runner (``_inline.py``) in the parent process.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ._worker_coroutines import awaited

__all__ = [
    "DEFAULT_CONCURRENCY",
    "SLOT_CANCEL_RUNNING",
    "OnLoop",
    "loop_thread",
    "on_cancel_signal",
]

#: Coroutines one worker runs at once for a call, unless told otherwise.
DEFAULT_CONCURRENCY = 100
#: Written by the parent in the slot of a running coroutine job to cancel it.
SLOT_CANCEL_RUNNING = -3
#: Seconds the end of an async generator initializer may take when the worker ends.
TEARDOWN_SECONDS = 3.0

# The worker state of the in-process pool whose coroutine job runs in this context
# (tasks copy it when they start; see _inline.py and _worker.worker_state).
inline_state: contextvars.ContextVar[Any] = contextvars.ContextVar("aiopar_inline_state")


class OnLoop:
    """A coroutine function as sent to a worker: its pickle, and how many of its
    coroutines the worker may run at once for one call."""

    __slots__ = ("blob", "concurrency", "name")

    def __init__(self, blob: bytes, concurrency: int, name: str) -> None:
        self.blob = blob
        self.concurrency = concurrency
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (OnLoop, (self.blob, self.concurrency, self.name))


class CancelledByCaller(BaseException):
    """The job's caller cancelled it while its coroutines ran (raised in the main thread)."""


def _new_loop() -> Any:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        import asyncio

        return asyncio.new_event_loop()


class LoopThread:
    """An event loop running in a thread of its own for the life of the process.

    ``run``, ``run_many`` and ``submit`` are called from other threads; everything
    else runs in the loop's thread.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = _new_loop()
        # slot of a running job -> its task (jobs of a worker only: slot >= 0)
        self._running: dict[int, Any] = {}
        self._slots: Any = None
        self._closings: list[Any] = []  # async generator initializers, to resume at the end
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="aiopar-worker-loop", daemon=True
        )
        self._thread.start()
        started.wait()

    def _serve(self, started: threading.Event) -> None:
        import asyncio

        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        self.loop.run_forever()

    # ── from other threads ─────────────────────────────────────────────────────────

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` on the loop; return a ``concurrent.futures.Future`` of it.

        Its task starts in a copy of the caller's context (``contextvars``), as the
        loop's ``call_soon_threadsafe`` makes one: how an in-process pool hands its
        worker state to its coroutine jobs (see :data:`inline_state`).
        """
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, Any], slot: int, slots: Any) -> Any:
        """Run one job's coroutine and wait for its value (in the worker's main thread).

        Raises:
            CancelledByCaller: the parent cancelled the job (see the module docstring).
            RuntimeError: the coroutine was cancelled inside the worker, by its own code.
        """
        import concurrent.futures as cf

        self._refuse_own_thread(coroutine)
        self._slots = slots
        future = self.submit(self._tracked(coroutine, slot))
        try:
            return future.result()
        except cf.CancelledError:
            if slots is not None and slot >= 0 and slots[slot] == SLOT_CANCEL_RUNNING:
                raise CancelledByCaller from None
            raise RuntimeError(
                "the coroutine was cancelled inside the worker (a CancelledError was "
                "raised by its own code, not by its caller)"
            ) from None

    def run_many(
        self, jobs: list[tuple[int, Coroutine[Any, Any, Any]]], slots: Any, on_done: Any
    ) -> list[Any]:
        """Run the coroutines of several jobs at once; wait for all of them.

        ``jobs``: ``(slot, coroutine)`` pairs. ``on_done(slot)`` is called in the loop's
        thread as each one ends. Returns, for each, its value or the exception it raised
        (:class:`CancelledByCaller` for one the parent cancelled).
        """
        for _, coroutine in jobs:
            self._refuse_own_thread(coroutine)
        self._slots = slots

        async def one(slot: int, coroutine: Coroutine[Any, Any, Any]) -> Any:
            import asyncio

            try:
                return await self._tracked(coroutine, slot)
            except asyncio.CancelledError:
                if slots is not None and slot >= 0 and slots[slot] == SLOT_CANCEL_RUNNING:
                    return CancelledByCaller()
                return RuntimeError(
                    "the coroutine was cancelled inside the worker (a CancelledError was "
                    "raised by its own code, not by its caller)"
                )
            except BaseException as exc:  # the task's own failure, sent back as its result
                return exc
            finally:
                on_done(slot)

        async def every() -> list[Any]:
            import asyncio

            return list(await asyncio.gather(*(one(slot, c) for slot, c in jobs)))

        return self.submit(every()).result()  # type: ignore[no-any-return]

    def cancel_marked(self) -> None:
        """Wake the loop to cancel the jobs whose slot says so (any thread, signal-safe)."""
        try:
            self.loop.call_soon_threadsafe(self._cancel_marked)
        except RuntimeError:  # the loop is closed: the worker is ending
            pass

    def _refuse_own_thread(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(
                "an async def function was sent through aiopar from a coroutine that runs "
                "in an aiopar worker (or in-process pool): it would wait for the loop it "
                "runs on; await the function directly there instead"
            )

    # ── in the loop's thread ───────────────────────────────────────────────────────

    def _marked(self, slot: int) -> bool:
        return self._slots is not None and slot >= 0 and self._slots[slot] == SLOT_CANCEL_RUNNING

    def _cancel_marked(self) -> None:
        for slot, task in list(self._running.items()):
            if self._marked(slot):
                task.cancel()

    async def _tracked(self, coroutine: Coroutine[Any, Any, Any], slot: int) -> Any:
        """Run ``coroutine`` as the job of ``slot``, cancellable by the parent."""
        import asyncio

        if slot < 0:
            return await coroutine
        task = asyncio.ensure_future(coroutine)
        self._running[slot] = task
        if self._marked(slot):  # cancelled before it got here
            task.cancel()
        try:
            return await task
        finally:
            self._running.pop(slot, None)

    # ── initializer ────────────────────────────────────────────────────────────────

    def initialize(
        self,
        initializer: Callable[..., Any],
        args: Sequence[Any],
        timeout: float | None,
        keep_closing: bool = True,
    ) -> tuple[Any, Any]:
        """Await an async initializer (or run an async generator one to its ``yield``)
        on the loop. Blocks the calling thread.

        Returns ``(state, closing)``: ``closing`` is the async generator to resume when
        the worker ends (None for an ``async def``); with ``keep_closing``, it is kept
        here and resumed by :meth:`close_initializers`.

        Raises:
            TimeoutError: past ``timeout`` seconds (None or 0: no limit).
            What the initializer raises.
        """
        import asyncio

        name = _name(initializer)

        async def start() -> tuple[Any, Any]:
            made = initializer(*args)
            if hasattr(made, "__anext__"):  # an async generator: its first value
                try:
                    value = await made.__anext__()
                except StopAsyncIteration:
                    raise RuntimeError(
                        f"the async generator initializer {name} ended without yielding "
                        "the worker's state; yield it once (after the setup, before the "
                        "teardown)"
                    ) from None
                return value, (made, name)
            return await awaited(made), None

        async def bounded() -> tuple[Any, Any]:
            if not timeout:
                return await start()
            try:
                return await asyncio.wait_for(start(), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"initializer={name} did not return within the start-up deadline of "
                    f"{timeout:g} s (AIOPAR_START_TIMEOUT); the workers cannot run any task"
                ) from None

        state, closing = self.submit(bounded()).result()
        if closing is not None and keep_closing:
            self._closings.append(closing)
        return state, closing

    def close_initializers(self) -> None:
        """Resume the async generator initializers kept here (see :meth:`finish`)."""
        closings, self._closings = self._closings, []
        self.finish(closings)

    def finish(self, closings: list[Any], timeout: float = TEARDOWN_SECONDS) -> None:
        """Resume each async generator initializer of ``closings`` past its ``yield``
        (its ``async with`` blocks close), within ``timeout`` seconds in all. Blocks the
        calling thread; what goes wrong is printed on stderr, never raised."""
        if not closings:
            return

        async def finish() -> None:
            for generator, name in reversed(closings):
                try:
                    await generator.__anext__()
                except StopAsyncIteration:
                    continue
                except Exception as exc:
                    _warn(f"the teardown of initializer={name} raised {type(exc).__name__}: {exc}")
                    continue
                await generator.aclose()
                _warn(f"initializer={name} yielded more than once; closed at its second yield")

        import concurrent.futures as cf

        future = self.submit(finish())
        try:
            future.result(timeout)
        except cf.TimeoutError:
            future.cancel()
            _warn(f"the teardown of the initializer took more than {timeout:g} s; cancelled")
        except BaseException as exc:
            _warn(f"the teardown of the initializer failed: {type(exc).__name__}: {exc}")


def _name(func: object) -> str:
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return name if isinstance(name, str) else type(func).__name__


def _warn(message: str) -> None:
    import sys

    print(f"aiopar worker {os.getpid()}: {message}", file=sys.stderr, flush=True)


_loop_thread: LoopThread | None = None
_lock = threading.Lock()


def loop_thread() -> LoopThread:
    """This process's loop thread, started on first use.

    The async generator initializers it keeps (a worker's) are resumed when the process
    ends, by a ``threading`` exit hook: it runs before the worker's other exit work
    (see ``_worker._leave_without_waiting_for_threads``).
    """
    global _loop_thread
    with _lock:
        current = _loop_thread
        if current is None or current.pid != os.getpid():  # none yet, or made before a fork
            current = _loop_thread = LoopThread()
            register = getattr(threading, "_register_atexit", None)
            if register is not None:
                try:
                    register(current.close_initializers)
                except RuntimeError:  # already exiting
                    pass
        return current


def on_cancel_signal(signum: int, frame: Any) -> None:
    """SIGUSR1 handler of a worker: let the loop cancel the jobs marked cancelled."""
    current = _loop_thread
    if current is not None and current.pid == os.getpid():
        current.cancel_marked()
