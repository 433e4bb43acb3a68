"""Tasks and their dependencies: ``TaskRef``, ``submit``, ``put``.

``gather`` is in ``_gather.py``, ``remote`` in ``_remote.py``.

``submit`` makes a job and returns a :class:`TaskRef` at once. If TaskRefs stand among
the arguments (also nested in lists, tuples, dicts and sets), the job waits for them
(``_dependencies.py``): the thread that finishes the last one puts the results in place
of the refs and hands the job to the runner, right there. None of it needs an event
loop, so a graph can be built from sync code and awaited from any loop.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy as _copy
import graphlib
import itertools
import pickle
import sys
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

import anyio

from ._checks import LOOP_BUDGET, check_arguments, plain_arguments, plain_value
from ._coroutine_jobs import task_function
from ._dependencies import send_when_done
from ._envelopes import CALL, dumps
from ._future import value as future_value
from ._job import Job, KeptFuture, Link
from ._options import TaskOptions
from ._plain import plain_data_arguments
from ._runner import linking
from ._waiting import FutureWatcher

if TYPE_CHECKING:
    from ._pool_base import CancelMode, PoolBase

__all__ = ["TaskRef", "put", "submit"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_task_ids = itertools.count(1)


# Containers searched for TaskRefs, and rebuilt with results in their place.
_CONTAINERS = (list, tuple, dict, set, frozenset)
_END: Any = object()


class TaskRef(Generic[R]):
    """The future result of a task started with :func:`aiopar.submit`.

    ``await ref`` returns the task's result or raises its exception. Pass a ref as an
    argument of another ``submit`` to make that task depend on it.

    Cancellation: a caller cancelled while awaiting a ref cancels its task, as awaiting
    an :class:`asyncio.Task` does: a task that has not started never runs; one already
    running is awaited or its worker killed, as the pool's ``cancel`` option says (or
    the task's own, from ``f.options(cancel=...).remote(...)``). Use
    :func:`anyio.CancelScope` with ``shield=True`` to wait without that effect.
    """

    __slots__ = ("_cancel", "_job", "_pool")

    def __init__(self, job: Job, pool: PoolBase, cancel: CancelMode | None = None) -> None:
        self._job = job
        self._pool = pool
        self._cancel = cancel

    def __reduce__(self) -> Any:
        raise TypeError(
            f"{self!r} cannot be sent to a worker process: a TaskRef is replaced by its "
            "result only where submit() finds it, in the arguments (also inside lists, "
            "tuples, dicts and sets, as long as they hold fewer than "
            f"{LOOP_BUDGET} objects in all); pass it there, or await it and pass its result"
        )

    def __repr__(self) -> str:
        future = self._job.future
        state = (
            "cancelled"
            if future.cancelled()
            else (
                "failed"
                if future.done() and future.exception()
                else ("done" if self.done() else "pending")
            )
        )
        return f"<TaskRef {self._job.label} {state}>"

    @property
    def future(self) -> cf.Future[R]:
        """The underlying :class:`concurrent.futures.Future`, for use with other tools.

        Its done-callbacks run in one of the pool's background threads: keep them short.
        On a cluster (``Pool(cluster=...)``), the result stays in the cluster until it
        is wanted: adding a done-callback to this future, or calling its ``result()``
        or ``exception()``, fetches it, and the future is done once it is here.
        """
        return self._job.future

    def done(self) -> bool:
        """True when the task has finished, failed or been cancelled."""
        future = self._job.future
        return future.done() or (isinstance(future, KeptFuture) and future.finished())

    def cancelled(self) -> bool:
        """True when the task was cancelled before it ran."""
        future = self._job.future
        if future.cancelled():
            return True
        return (
            self._job.cancel_requested
            and future.done()
            and isinstance(future.exception(), cf.CancelledError)
        )

    def cancel(self) -> bool:
        """Cancel the task if no worker has started it; return whether it was cancelled.

        Awaiting a cancelled ref raises :class:`concurrent.futures.CancelledError`.
        On a cluster (``Pool(cluster=...)``) a task is cancelled unless it has finished:
        one not started never starts; one a Dask worker already runs goes on there to
        its end (Dask cannot interrupt it), and its result is dropped.
        """
        dispatcher = self._pool._dispatcher
        if dispatcher is None:
            return self._job.future.cancel()
        return dispatcher.try_cancel(self._job)

    def __await__(self) -> Generator[Any, None, R]:
        return self._wait().__await__()

    async def _wait(self) -> R:
        future = self._job.future
        if not future.done():
            watcher = FutureWatcher()
            watcher.watch(future)
            try:
                await watcher.wait_for(future)
            except BaseException as exc:
                await self._pool._abandon([self._job], watcher, exc, self._cancel)
                raise
        else:
            await anyio.lowlevel.checkpoint()
        return future.result()  # type: ignore[no-any-return]


class _Plan:
    """The TaskRefs found in a call's arguments and how to put their results in place.

    Built by :func:`_find_refs` on the caller's thread, used by :func:`_resolve` in
    whichever thread finishes the last dependency.

    Attributes:
        refs: the TaskRefs, by id.
        containers: the containers that hold a TaskRef, directly or deeper, by id, in
            the order to rebuild them (what a container holds comes before it).
    """

    def __init__(self) -> None:
        self.refs: dict[int, TaskRef[Any]] = {}
        self.containers: dict[int, Any] = {}


def _flat_refs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[TaskRef[Any]] | None:
    """The TaskRefs among ``args`` and ``kwargs`` when they hold TaskRefs and plain values
    only (the common shape of a task graph), found without a walk; None for others."""
    refs = []
    for values in (args, kwargs.values()) if kwargs else (args,):
        for value in values:
            if type(value) is TaskRef:
                refs.append(value)
            elif not plain_value(value):
                return None
    return refs


def _resolve_flat(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    get: Callable[[TaskRef[Any]], Any] | None = None,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` of :func:`_flat_refs` with each TaskRef replaced by ``get(ref)``:
    by default its (finished) result."""
    if get is None:  # called once every ref has succeeded: read without the futures' locks
        args = tuple([future_value(v._job.future) if type(v) is TaskRef else v for v in args])
        if kwargs:
            kwargs = {
                k: future_value(v._job.future) if type(v) is TaskRef else v
                for k, v in kwargs.items()
            }
        return args, kwargs
    args = tuple([get(v) if type(v) is TaskRef else v for v in args])
    if kwargs:
        kwargs = {k: get(v) if type(v) is TaskRef else v for k, v in kwargs.items()}
    return args, kwargs


def _find_refs(value: Any, label: str, budget: int = LOOP_BUDGET) -> _Plan:
    """Find the TaskRefs in ``value`` (inside lists, tuples, dicts, sets, frozensets).

    Each container is visited once, by identity, whatever the shape (shared parts,
    cycles); at most ``budget`` objects are looked at: a TaskRef beyond that is not
    found, and fails the call when its arguments are pickled (``TaskRef.__reduce__``).

    Raises:
        TypeError: when a TaskRef is inside a container that holds itself (its result
            could not be put in its place consistently).
    """
    plan = _Plan()
    seen: dict[int, Any] = {}  # id -> container, kept alive while we look
    holders: dict[int, list[int]] = {}  # id of a ref or container -> ids of its holders
    stack: list[tuple[Iterator[Any], int]] = [(iter((value,)), 0)]
    while stack and budget > 0:
        children, holder = stack[-1]
        item = next(children, _END)
        if item is _END:
            stack.pop()
            continue
        budget -= 1
        if isinstance(item, TaskRef):
            plan.refs[id(item)] = item
        elif not isinstance(item, _CONTAINERS):
            continue
        if holder:
            holders.setdefault(id(item), []).append(holder)
        if isinstance(item, TaskRef) or id(item) in seen:
            continue
        seen[id(item)] = item
        inside = itertools.chain.from_iterable(item.items()) if isinstance(item, dict) else item
        stack.append((iter(inside), id(item)))
    if not plan.refs:
        return plan
    # The containers on a path from the root to a ref, and what of theirs to rebuild.
    graph: dict[int, set[int]] = {}
    todo = list(plan.refs)
    while todo:
        child = todo.pop()
        for holder in holders.get(child, ()):
            if holder not in graph:
                graph[holder] = set()
                todo.append(holder)
            if child not in plan.refs:
                graph[holder].add(child)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError:
        raise TypeError(
            f"the arguments of {label} hold a TaskRef inside a container that contains "
            "itself; the task's result cannot be put in the ref's place there: pass the "
            "TaskRef outside the cyclic container (for example as an argument of its own)"
        ) from None
    plan.containers = {key: seen[key] for key in order}
    return plan


def _rebuilt(container: Any, items: list[Any]) -> Any:
    """A container like ``container`` holding ``items`` (pairs for a dict)."""
    kind = type(container)
    if kind in (list, tuple, set, frozenset, dict):
        return kind(items)
    if isinstance(container, tuple):
        if hasattr(container, "_fields"):  # a namedtuple
            return kind(*items)
        return kind(items)
    if isinstance(container, frozenset):
        return kind(items)
    copy = _copy.copy(container)  # a subclass of list, set or dict (defaultdict, ...)
    copy.clear()
    if isinstance(container, list):
        copy.extend(items)
    else:
        copy.update(items)
    return copy


def _result(ref: TaskRef[Any]) -> Any:
    return future_value(ref._job.future)  # called once every ref has succeeded


def _link(ref: TaskRef[Any]) -> Any:
    return Link(ref._job)


def _resolve(value: Any, plan: _Plan, get: Callable[[TaskRef[Any]], Any] = _result) -> Any:
    """A copy of ``value`` with each TaskRef replaced by ``get(ref)``: by default its
    (finished) result.

    Only the containers that hold a TaskRef are rebuilt, each once: a part shared by
    several holders is shared by their copies too.
    """
    done: dict[int, Any] = {key: get(ref) for key, ref in plan.refs.items()}

    def put(item: Any) -> Any:
        return done.get(id(item), item)

    for key, container in plan.containers.items():
        if isinstance(container, dict):
            items = [(put(k), put(v)) for k, v in container.items()]
        else:
            items = [put(item) for item in container]
        done[key] = _rebuilt(container, items)
    return put(value)


def submit(
    pool: PoolBase,
    func: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: TaskOptions | None = None,
) -> TaskRef[R]:
    """Make the job for ``func(*args, **kwargs)`` and send it once its dependencies are in.

    ``options``: the task's own ``cancel`` and ``retries``, instead of the pool's.
    """
    dispatcher = pool._require_dispatcher()
    cancel = pool._check_cancel(options.cancel) if options is not None else None
    blob, concurrency, name = task_function(func, pool.concurrency)
    label = f"task {name}#{next(_task_ids)}"
    plain = plain_arguments(args, kwargs)
    flat = None if plain else _flat_refs(args, kwargs)
    if not plain and flat is None:
        # Containers: of builtin data only (one pass of the C pickler), or walked.
        plain = plain_data_arguments(args, kwargs)
        if not plain:
            check_arguments(args, kwargs, label)
    job = Job(blob, CALL, None, label)
    job.concurrency = concurrency
    links = linking(dispatcher)
    if links is not None:  # its result stays where it ran until wanted
        job.future = KeptFuture()
    if options is not None:
        job.retries = options.retries
    ref: TaskRef[R] = TaskRef(job, pool, cancel)
    refs = flat
    plan: _Plan | None = None
    root: Any = None
    if flat is None and not plain:  # TaskRefs may be anywhere inside the arguments
        root = (args, kwargs)  # the plan finds containers by identity: this very tuple
        plan = _find_refs(root, label)
        refs = list(plan.refs.values())
    if refs:
        if links is not None and all(found._pool is pool for found in refs):
            # The runner passes the results from job to job where they run.
            job.payload = (
                _resolve_flat(args, kwargs, _link) if plan is None else _resolve(root, plan, _link)
            )
            job.linked = True
            dispatcher.submit(job)
            return ref
        futures = [found._job.future for found in refs]
        if plan is None:
            send_when_done(job, dispatcher, futures, _resolve_flat, args, kwargs)
        else:
            send_when_done(job, dispatcher, futures, _resolve, root, plan)
        return ref
    job.payload = (args, kwargs) if root is None else root
    job.plain = plain  # plain values only: sent as they are
    dispatcher.submit(job)
    return ref


def put(pool: PoolBase, value: T) -> TaskRef[T]:
    """A finished TaskRef holding a copy of ``value``, its big arrays in shared memory.

    The copy is made here, once: numpy arrays of 1 MiB or more are copied into
    segments of the pool, which are then held as a task's result is (see
    ``_packing.py``), so a task that receives the ref or those arrays maps the same
    segment instead of getting a copy. The segments live as long as the arrays over
    them, and lose their names when the pool closes.
    """
    dispatcher = pool._require_dispatcher()
    job = Job(b"", CALL, None, f"put#{next(_task_ids)}")
    links = linking(dispatcher)
    if links is not None:  # placed in the cluster (Client.scatter)
        job.future = KeptFuture()
        links.store(job, value)
        return TaskRef(job, pool)
    job.future.set_running_or_notify_cancel()
    job.future.set_result(_stored_copy(value, dispatcher.arena))
    return TaskRef(job, pool)


def _stored_copy(value: T, arena: Any) -> T:
    if arena is not None and "numpy" in sys.modules:
        from . import _packing

        try:
            data, entries, used = _packing.dump(value, arena=arena)
        except Exception:
            pass  # not plain-picklable: a copy by cloudpickle below, arrays and all
        else:
            try:
                return _packing.load_in_parent(data, entries, arena.token)  # type: ignore[no-any-return]
            finally:
                arena.give_back(used)  # those the arrays did not take over (none, normally)
    try:
        return pickle.loads(dumps(value))  # type: ignore[no-any-return]
    except Exception as exc:
        raise TypeError(
            f"put() keeps a copy of the value, made by pickling it, and this value cannot be "
            f"pickled ({type(exc).__name__}: {exc}); put picklable data (arrays, plain "
            "values, dataclasses)"
        ) from None
