"""A job that waits for its dependencies, and is sent by whichever thread finishes the last.

``submit`` (``_tasks.py``) finds the TaskRefs among a call's arguments; their futures are
the job's dependencies. :func:`send_when_done` hands the job to its runner at once if
they are all finished already; otherwise a :class:`_Countdown` is registered on each
unfinished one, and the done-callback of the last one to finish puts the results in
place of the refs and submits the job, right there: in the executor's manager thread
(or the dispatcher's) that settled that dependency, with no round trip through an event
loop. A failed or cancelled dependency fails or cancels the job at once, without
waiting for the others, and the job is never sent.

Threads: any. :func:`send_when_done` runs in the caller's thread; the done-callbacks in
the threads that settle the dependencies, several at once. The countdown takes no lock:
each callback pops one entry of a list (atomic), and the one that pops the last entry
is the last callback; failing a job takes a lock shared by all jobs, as failures are rare.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._checks import plain_arguments
from ._future import failed, unfinished
from ._job import Job

if TYPE_CHECKING:
    from ._runner import Runner

__all__ = ["send_when_done"]

#: Builds the job's payload ``(args, kwargs)`` from two values once every dependency has
#: succeeded: ``resolve(first, second)`` (two values rather than a ``functools.partial``:
#: one object fewer per waiting task for the cyclic garbage collector to track).
Resolve = Callable[[Any, Any], tuple[tuple[Any, ...], dict[str, Any]]]

# Taken to claim a waiting job for failing it, so that two dependencies failing at once
# in two threads do not both set its outcome.
_fail_lock = threading.Lock()


def send_when_done(
    job: Job,
    runner: Runner,
    dependencies: Sequence[cf.Future[Any]],
    resolve: Resolve,
    first: Any,
    second: Any,
) -> None:
    """Submit ``job`` to ``runner`` once all of ``dependencies`` have succeeded, with
    ``resolve(first, second)`` as its payload; fail it (without running it) as soon as
    one fails, or cancel it if one is cancelled. Returns at once."""
    waiting = []
    for future in dependencies:
        if unfinished(future):
            waiting.append(future)
        elif _fail_if_failed(job, future):
            return
    if not waiting:
        _send(job, runner, resolve, first, second)
        return
    countdown = _Countdown(job, runner, resolve, first, second, len(waiting))
    for future in waiting:
        future.add_done_callback(countdown)


class _Countdown:
    """Counts a job's unfinished dependencies down; the last one sends the job.

    It is itself the done-callback of each of them (no bound method per dependency).
    """

    __slots__ = ("_first", "_job", "_left", "_resolve", "_runner", "_second")

    def __init__(
        self, job: Job, runner: Runner, resolve: Resolve, first: Any, second: Any, count: int
    ) -> None:
        self._job = job
        self._runner = runner
        # The arguments (and the refs in them) are dropped once the job is sent or
        # failed: the dependencies' futures keep this callback, not their own refs.
        self._resolve: Resolve | None = resolve
        self._first = first
        self._second = second
        # Popped by each callback (atomic); 0 comes out last. A bytearray when it fits:
        # unlike a list, not an object the cyclic garbage collector tracks.
        self._left: bytearray | list[int] = (
            bytearray(range(count)) if count < 256 else list(range(count))
        )

    def __call__(self, dependency: cf.Future[Any]) -> None:
        # In the thread that finished ``dependency`` (or the caller's, if it finished
        # while callbacks were being added).
        if _fail_if_failed(self._job, dependency):
            self._resolve = None  # before the pop: the last callback then sees it
        if self._left.pop() != 0:
            return
        resolve, self._resolve = self._resolve, None
        first, second = self._first, self._second
        self._first = self._second = None
        if resolve is not None and not self._job.future.done():
            _send(self._job, self._runner, resolve, first, second)


def _fail_if_failed(job: Job, dependency: cf.Future[Any]) -> bool:
    """If the finished ``dependency`` failed or was cancelled, fail or cancel ``job``
    (unless it is done already); return whether it did fail or was cancelled."""
    if not failed(dependency):  # the common case, told without taking its lock
        return False
    if dependency.cancelled():
        job.future.cancel()
        return True
    error = dependency.exception()
    assert error is not None
    _fail(job, error)
    return True


def _fail(job: Job, error: BaseException) -> None:
    future = job.future
    with _fail_lock:  # the first failure claims the job (RUNNING), and only it
        if future.done() or future.running() or not future.set_running_or_notify_cancel():
            return
    # Outside the lock: the job's own dependents are failed from its done-callbacks.
    future.set_exception(error)


def _send(job: Job, runner: Runner, resolve: Resolve, first: Any, second: Any) -> None:
    """Put the dependencies' results in place and submit ``job``, or fail it with what
    went wrong doing so."""
    try:
        payload = resolve(first, second)
        job.payload = payload
        job.plain = plain_arguments(*payload)
    except BaseException as exc:
        _fail(job, exc)
    else:
        runner.submit(job)
