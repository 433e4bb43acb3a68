"""TaskRefs in the order they finish: ``as_completed`` and ``wait``.

Both run in the caller's event loop (asyncio, uvloop or trio) and only wait: one
:class:`~aiopar._waiting.FutureWatcher` watches the futures of all the refs, whose
done-callbacks (in the pool's threads) wake the loop. Nothing here starts, cancels or
reads a task.
"""

from __future__ import annotations

import collections
import math
from collections.abc import AsyncIterator, Iterable
from typing import Any, TypeVar

import anyio

from ._tasks import TaskRef
from ._waiting import FutureWatcher

__all__ = ["as_completed", "wait"]

R = TypeVar("R")


def _check_refs(refs: object, caller: str) -> list[TaskRef[Any]]:
    if isinstance(refs, TaskRef):
        raise TypeError(f"{caller} takes a list of TaskRefs, got one TaskRef; wrap it: [ref]")
    if not isinstance(refs, Iterable):
        raise TypeError(f"{caller} takes a list of TaskRefs, got {type(refs).__name__}: {refs!r}")
    checked = list(refs)
    for index, ref in enumerate(checked):
        if not isinstance(ref, TaskRef):
            raise TypeError(
                f"{caller} takes TaskRefs (from submit() or f.remote()), got "
                f"{type(ref).__name__} at refs[{index}]: {ref!r}"
            )
    return checked


async def as_completed(refs: Iterable[TaskRef[R]]) -> AsyncIterator[TaskRef[R]]:
    """Yield the given TaskRefs as they finish, the first finished first.

    ``await ref`` on a yielded ref returns its result (or raises its exception) at
    once. A ref given twice is yielded twice. Works on asyncio, uvloop and trio::

        async for ref in aiopar.as_completed(refs):
            print(await ref)

    Raises:
        TypeError: when ``refs`` is not an iterable of TaskRefs.

    Cancellation: only the waiting is cancelled; the tasks go on, and leaving the loop
    early leaves them alone too. Cancel them with ``ref.cancel()`` if need be.
    """
    checked = _check_refs(refs, "as_completed()")
    by_future: dict[int, list[TaskRef[R]]] = {}
    for ref in checked:
        by_future.setdefault(id(ref.future), []).append(ref)
    watcher = FutureWatcher()
    watcher.watch_all(dict.fromkeys(ref.future for ref in checked))
    await anyio.lowlevel.checkpoint()
    for _ in range(len(by_future)):
        await anyio.lowlevel.checkpoint_if_cancelled()  # finished ones do not wait
        finished = await watcher.next_finished()
        for ref in by_future.pop(id(finished)):
            yield ref


async def wait(
    refs: Iterable[TaskRef[R]],
    *,
    num_returns: int | None = None,
    timeout: float | None = None,
) -> tuple[list[TaskRef[R]], list[TaskRef[R]]]:
    """Wait until ``num_returns`` of ``refs`` have finished; return ``(done, pending)``.

    As ``ray.wait``: ``done`` holds ``num_returns`` finished refs (or fewer, when
    ``timeout`` passed first), ``pending`` all the others, both in the order of
    ``refs``. A ref that failed or was cancelled counts as finished. With more than
    ``num_returns`` finished, the first ones in ``refs`` order are returned as done.

    Args:
        refs: TaskRefs, from any pools.
        num_returns: how many finished refs to wait for; None means 1, as in Ray
            (``num_returns=len(refs)`` waits for all).
        timeout: seconds to wait at most; None waits as long as it takes, 0 returns at
            once with what has finished.

    Raises:
        TypeError: when ``refs`` is not an iterable of TaskRefs.
        ValueError: for a ``num_returns`` below 1 or above ``len(refs)``, or a
            negative ``timeout``.

    Cancellation: only the waiting is cancelled; the tasks go on.
    """
    checked = _check_refs(refs, "wait()")
    wanted = 1 if num_returns is None else num_returns
    if isinstance(wanted, bool) or not isinstance(wanted, int):
        raise TypeError(f"num_returns must be an int or None, got {num_returns!r}")
    if checked and not 1 <= wanted <= len(checked):
        raise ValueError(
            f"num_returns must be between 1 and len(refs) = {len(checked)}, got {num_returns!r}"
        )
    if num_returns is not None and not checked:
        raise ValueError(f"num_returns={num_returns!r} but refs is empty")
    if timeout is not None and not (isinstance(timeout, int | float) and timeout >= 0):
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
    wanted = min(wanted, len(checked))
    entries = collections.Counter(id(ref.future) for ref in checked)  # a ref may repeat
    watcher = FutureWatcher()
    watcher.watch_all(dict.fromkeys(ref.future for ref in checked))
    await anyio.lowlevel.checkpoint()
    finished = 0
    with anyio.move_on_after(math.inf if timeout is None else timeout):
        while finished < wanted:
            finished += entries[id(await watcher.next_finished())]
    done: list[TaskRef[R]] = []
    pending: list[TaskRef[R]] = []
    for ref in checked:
        (done if ref.future.done() and len(done) < wanted else pending).append(ref)
    return done, pending
