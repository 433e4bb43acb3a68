"""``tree_reduce``: a reduction as a balanced tree of jobs.

Runs of plain values are first cut into chunks, each reduced sequentially in one job
(so a million cheap items make a handful of jobs, not a million); TaskRefs and other
awaitables stay leaves of their own. With ``ordered=True`` the partial results are the
leaves of a balanced tree fixed up front, pairs (0,1), (2,3), … level by level, so the
depth is ⌈log₂ n⌉; each node is combined by one job as soon as its two children are
done. With ``ordered=False`` (commutative ``func``) *any* two ready results are combined.

The choice of chunk size: ``ceil(n / (2 * workers))`` items. A chunk of c items costs
c − 1 calls in a row, but the workers are busy either way: the total time is the same as
a pure tree's for slow functions, and far lower for cheap ones.
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import math
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ._checks import check_arguments, check_items
from ._chunks import check_positive
from ._codepickle import func_name
from ._coroutine_jobs import job_function
from ._envelopes import CALL, REDUCE
from ._job import Job
from ._tasks import TaskRef
from ._waiting import FutureWatcher

if TYPE_CHECKING:
    from ._pool_base import CancelMode, PoolBase

__all__ = ["NO_INITIAL", "tree_reduce"]

T = TypeVar("T")


class _NoInitial:
    def __repr__(self) -> str:
        return "<none>"


#: Default of ``initial``: no initial value.
NO_INITIAL: Any = _NoInitial()


def _done_future(value: object) -> cf.Future[Any]:
    future: cf.Future[Any] = cf.Future()
    future.set_result(value)
    return future


async def _collect(items: object) -> list[Any]:
    if isinstance(items, AsyncIterable):
        return [item async for item in items]
    if isinstance(items, Iterable) and not isinstance(items, str | bytes):
        return list(items)
    raise TypeError(
        f"items must be an iterable or async iterable, got {type(items).__name__}: {items!r}"
    )


async def _settle(awaitable: Awaitable[Any], future: cf.Future[Any]) -> None:
    try:
        future.set_result(await awaitable)
    except Exception as exc:
        future.set_exception(exc)


class _Node:
    """A leaf (a partial result's future) or an inner node of the ordered tree."""

    __slots__ = ("future", "left", "right")

    def __init__(
        self,
        left: _Node | None = None,
        right: _Node | None = None,
        future: cf.Future[Any] | None = None,
    ) -> None:
        self.left = left
        self.right = right
        self.future = future

    def children_done(self) -> bool:
        return all(
            child is not None and child.future is not None and child.future.done()
            for child in (self.left, self.right)
        )


class _Tree:
    """The state of one reduction: the partial results, in order, and our jobs."""

    def __init__(self, pool: PoolBase, blob: bytes, name: str, concurrency: int = 0) -> None:
        self.pool = pool
        self.blob = blob
        self.concurrency = concurrency
        self.name = name
        self.jobs: list[Job] = []
        self.watcher = FutureWatcher()

    def send(self, kind: str, payload: object, first_item: int = 0) -> cf.Future[Any]:
        job = Job(
            self.blob, kind, payload, f"step {len(self.jobs) + 1} of tree_reduce({self.name})"
        )
        job.first_item = first_item
        job.concurrency = self.concurrency
        self.jobs.append(job)
        self.watcher.watch(job.future)
        self.pool._send(job)
        return job.future

    def pair(self, left: cf.Future[Any], right: cf.Future[Any]) -> cf.Future[Any]:
        return self.send(CALL, ((left.result(), right.result()), {}))

    async def ordered(self, parts: list[cf.Future[Any]]) -> Any:
        # The shape is fixed up front: adjacent pairs, level by level, an odd one out
        # moving up. Each node is combined as soon as both its children are done.
        nodes: list[_Node] = []
        level: list[_Node] = [_Node(future=part) for part in parts]
        while len(level) > 1:
            above = [_Node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            nodes.extend(above)
            if len(level) % 2:
                above.append(level[-1])
            level = above
        root = level[0]
        while True:
            for part in parts:
                if part.done() and (part.cancelled() or part.exception() is not None):
                    part.result()  # raises
            for node in nodes:
                if node.future is None and node.children_done():
                    node.future = self.pair(node.left.future, node.right.future)  # type: ignore[union-attr,arg-type]
            if root.future is not None and root.future.done():
                return root.future.result()
            await self.watcher.next_finished()

    async def unordered(self, parts: list[cf.Future[Any]]) -> Any:
        # A list, not a set: the same TaskRef may stand in the items more than once.
        ready = [part for part in parts if part.done()]
        pending = [part for part in parts if not part.done()]
        while True:
            for part in ready:
                part.result()  # raises on failure
            while len(ready) >= 2:
                pending.append(self.pair(ready.pop(), ready.pop()))
            if not pending:
                return ready[0].result()
            finished = await self.watcher.next_finished()
            ready.extend(part for part in pending if part is finished)
            pending = [part for part in pending if part is not finished]


async def tree_reduce(
    pool: PoolBase,
    func: Callable[[T, T], T],
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    initial: Any,
    chunksize: int | None,
    ordered: bool,
    cancel: CancelMode | None = None,
) -> T:
    chunksize = check_positive("chunksize", chunksize)
    blob, concurrency = job_function(func, None, pool.concurrency)
    pool._require_dispatcher()
    values = await _collect(items)
    if initial is not NO_INITIAL:
        values.insert(0, initial)
    if not values:
        raise TypeError("tree_reduce() of empty iterable with no initial value")
    label = f"tree_reduce({func_name(func)})"
    if initial is not NO_INITIAL:
        check_arguments((), {"initial": initial}, label)
        await check_items(values[1:], label)
    else:
        await check_items(values, label)
    size = chunksize or max(1, math.ceil(len(values) / (2 * pool.workers)))
    tree = _Tree(pool, blob, func_name(func), concurrency)
    result: Any = None
    error: Exception | None = None
    try:
        async with anyio.create_task_group() as group:
            parts: list[cf.Future[Any]] = []
            run: list[Any] = []  # consecutive plain values, cut into chunks
            run_start = 0  # index in items of the run's first value
            skew = 0 if initial is NO_INITIAL else 1  # `initial` is not one of the items

            def flush() -> None:
                for start in range(0, len(run), size):
                    chunk = run[start : start + size]
                    parts.append(
                        _done_future(chunk[0])
                        if len(chunk) == 1
                        else tree.send(REDUCE, chunk, run_start + start - skew)
                    )
                run.clear()

            for index, value in enumerate(values):
                if not run:
                    run_start = index
                if isinstance(value, TaskRef):
                    flush()
                    tree.watcher.watch(value.future)
                    parts.append(value.future)
                elif inspect.isawaitable(value):
                    flush()
                    future: cf.Future[Any] = cf.Future()
                    group.start_soon(_settle, value, future)
                    tree.watcher.watch(future)
                    parts.append(future)
                else:
                    run.append(value)
            flush()
            try:
                combine = tree.ordered if ordered else tree.unordered
                result = await combine(parts)
            except Exception as exc:
                error = exc  # raised below, outside the task group, as itself
            group.cancel_scope.cancel()  # stop awaiting awaitables no longer needed
    except BaseException as exc:
        await pool._abandon(tree.jobs, tree.watcher, exc, cancel)
        raise
    if error is not None:
        await pool._abandon(tree.jobs, tree.watcher, cancel=cancel)
        raise error
    return result  # type: ignore[no-any-return]
