"""``gather``: wait for many TaskRefs and awaitables, on any backend.

Runs on the caller's event loop. A gather of TaskRefs only needs no task per ref: one
``FutureWatcher`` (``_waiting.py``) watches all their futures, and the loop is woken
once, when the last one is done or when one fails (the done-callbacks run in the
threads that settle the jobs, and wake the loop thread-safely).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ._future import failed as future_failed
from ._future import succeeded
from ._future import value as future_value
from ._job import Job
from ._tasks import TaskRef
from ._waiting import FutureWatcher, wait_all_shielded

if TYPE_CHECKING:
    from ._pool_base import CancelMode, PoolBase

__all__ = ["gather"]


async def gather(*refs_or_awaitables: Awaitable[Any], return_exceptions: bool = False) -> list[Any]:
    """Wait for TaskRefs and other awaitables; return their results in order.

    Like :func:`asyncio.gather`, on any backend. On the first failure the others are
    cancelled and that exception is raised, unless ``return_exceptions=True``, in which
    case exceptions are returned in place of results.

    Cancellation: cancels every awaitable still pending (TaskRefs as ``await ref`` would).
    """
    results: list[Any] = [None] * len(refs_or_awaitables)
    failure: list[BaseException] = []

    async def run(index: int, awaitable: Awaitable[Any], scope: anyio.CancelScope) -> None:
        try:
            results[index] = await awaitable
        except Exception as exc:
            if return_exceptions:
                results[index] = exc
            elif not failure:
                failure.append(exc)
                scope.cancel()

    for awaitable in refs_or_awaitables:
        if not isinstance(awaitable, Awaitable):
            raise TypeError(
                f"gather() takes TaskRefs and awaitables, got {type(awaitable).__name__}: "
                f"{awaitable!r}"
            )
    refs = [a for a in refs_or_awaitables if isinstance(a, TaskRef)]
    if refs and len(refs) == len(refs_or_awaitables):
        return await _gather_refs(refs, return_exceptions)
    async with anyio.create_task_group() as group:
        for index, awaitable in enumerate(refs_or_awaitables):
            group.start_soon(run, index, awaitable, group.cancel_scope)
    if failure:
        raise failure[0]
    return results


async def _gather_refs(refs: Sequence[TaskRef[Any]], return_exceptions: bool) -> list[Any]:
    """:func:`gather` of TaskRefs only, with the same results and cancellation, but one
    watcher for all their futures instead of a task, a watcher and an event per ref. The
    event loop is woken when the last task is done or when one fails, not per task."""
    futures = [ref.future for ref in refs]
    watcher = FutureWatcher()
    failed: cf.Future[Any] | None = None
    try:
        await anyio.lowlevel.checkpoint()
        watcher.watch_all(futures, wake_on_success=False)
        for _ in futures:
            finished = await watcher.next_finished()
            if not return_exceptions and future_failed(finished):
                failed = finished
                break
    except BaseException as exc:
        await _abandon_refs(refs, watcher, exc)
        raise
    if failed is not None:
        await _abandon_refs(refs, watcher, None)
        failed.result()  # raises its exception
    results: list[Any] = []
    for future in futures:
        if succeeded(future):  # read without the future's lock: thousands of them
            results.append(future_value(future))
            continue
        try:
            results.append(future.result())
        except Exception as exc:  # only with return_exceptions: failures were raised above
            results.append(exc)
    return results


async def _abandon_refs(
    refs: Sequence[TaskRef[Any]], watcher: FutureWatcher, cause: BaseException | None
) -> None:
    """Cancel the unfinished tasks of ``refs`` as ``await ref`` would, pool by pool: all
    of them are stopped before any running one is waited for."""
    groups: dict[tuple[int, CancelMode | None], tuple[PoolBase, list[Job]]] = {}
    for ref in refs:
        if not ref.future.done():
            key = (id(ref._pool), ref._cancel)
            groups.setdefault(key, (ref._pool, []))[1].append(ref._job)
    running = [
        job
        for (_, cancel), (pool, jobs) in groups.items()
        for job in pool._stop(jobs, cause, cancel)
    ]
    await wait_all_shielded([job.future for job in running], watcher)
