"""``JobFuture``: the ``concurrent.futures.Future`` of one job, made for less.

Every job has a future, and a tiny task costs the parent a few tens of microseconds in
all, so the future's own cost counts. A plain ``concurrent.futures.Future`` builds a
``threading.Condition`` over an ``RLock``: the condition is a Python object whose
construction alone is most of the future's, and every ``with future._condition`` (in
``add_done_callback``, ``set_result``, ``done`` waiters...) goes through its Python
``__enter__`` and ``__exit__``. A :class:`JobFuture` is a ``concurrent.futures.Future``
in every respect (same fields, same methods, the same behaviour for ``result(timeout)``,
``concurrent.futures.wait``, ``asyncio.wrap_future``) whose ``_condition`` is a
:class:`_Condition`: the C ``RLock`` itself, taught the two methods of a condition that
a future calls (``wait`` and ``notify_all``). Taking it costs what taking an ``RLock``
costs, and a future that nobody waits on in a blocking call never allocates a sleeper.

The functions below read a future's outcome without taking its lock, for the paths that
look at thousands of futures (dependencies, ``gather``): a future's state is written
last, after its result or exception (``set_result``, ``set_exception``), and never
changes once done, so a thread that sees a done state sees the outcome with it. They
work on any ``concurrent.futures.Future`` (these fields are the standard class's).

Threads: any. The lock guards the future's state as the standard one does.
"""

from __future__ import annotations

import _thread
import concurrent.futures as cf
from concurrent.futures._base import FINISHED, PENDING, RUNNING
from typing import TYPE_CHECKING, Any

__all__ = ["JobFuture", "failed", "succeeded", "unfinished", "value"]


class _Condition(_thread.RLock):  # type: ignore[misc]
    """A reentrant lock with the ``wait`` and ``notify_all`` of ``threading.Condition``.

    Only what ``concurrent.futures.Future`` uses: ``wait(timeout)`` with the lock held
    (released while waiting, taken back before returning) and ``notify_all()`` with the
    lock held.
    """

    # Locks of the threads blocked in wait(), set on the instance by the first wait().
    _sleepers: list[Any] | None = None

    if TYPE_CHECKING:  # methods of the C RLock that typeshed does not list

        def _release_save(self) -> Any: ...
        def _acquire_restore(self, state: Any, /) -> None: ...

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for :meth:`notify_all` or ``timeout`` seconds, take
        the lock back; return False on timeout."""
        sleeper = _thread.allocate_lock()
        sleeper.acquire()
        if self._sleepers is None:
            self._sleepers = []
        self._sleepers.append(sleeper)
        saved = self._release_save()
        try:
            woken: bool = sleeper.acquire(True, -1 if timeout is None else max(timeout, 0))
        finally:
            self._acquire_restore(saved)
        if not woken:
            try:
                self._sleepers.remove(sleeper)
            except ValueError:  # notified between the timeout and taking the lock back
                pass
        return woken

    def notify_all(self) -> None:
        """Wake every thread blocked in :meth:`wait` (called with the lock held)."""
        sleepers = self._sleepers
        if sleepers:
            for sleeper in sleepers:
                sleeper.release()
            sleepers.clear()


class JobFuture(cf.Future[Any]):
    """A ``concurrent.futures.Future`` whose lock is a C ``RLock`` (see the module
    docstring): the same fields and behaviour, a third of the cost to make and to take."""

    def __init__(self) -> None:  # the fields of concurrent.futures.Future.__init__
        # Used as a threading.Condition is, for the two methods a future calls.
        self._condition = _Condition()  # type: ignore[assignment]
        self._state = PENDING
        self._result = None
        self._exception = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []


def unfinished(future: cf.Future[Any]) -> bool:
    """Whether ``future`` is neither done nor cancelled (no lock taken)."""
    state = future._state
    return state in (PENDING, RUNNING)


def failed(future: cf.Future[Any]) -> bool:
    """Whether ``future``, which is done, was cancelled or raised (no lock taken)."""
    return future._state != FINISHED or future._exception is not None


def succeeded(future: cf.Future[Any]) -> bool:
    """Whether ``future`` has finished with a result (no lock taken)."""
    return future._state == FINISHED and future._exception is None


def value(future: cf.Future[Any]) -> Any:
    """The result of ``future``, which :func:`succeeded` (no lock taken)."""
    return future._result
