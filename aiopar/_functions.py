"""The module-level functions: each runs on ``pool``, or on the default pool.

They have the signatures of the :class:`aiopar.Pool` methods plus ``pool=None``.
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
)
from typing import Any, ParamSpec, TypeVar, TypeVarTuple, overload

from . import _gather
from ._default import get_default_pool
from ._maps import ProgressOption
from ._options import TaskOptions
from ._pool import Pool
from ._pool_base import CancelMode
from ._reduce import NO_INITIAL
from ._remote import RemoteFunction
from ._tasks import TaskRef

__all__ = [
    "amap",
    "amap_chunks",
    "gather",
    "imap",
    "put",
    "remote",
    "starmap",
    "submit",
    "tree_reduce",
]

P = ParamSpec("P")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")
T = TypeVar("T")


def _pool(pool: Pool | None) -> Pool:
    if pool is None:
        return get_default_pool()
    if not isinstance(pool, Pool):
        raise TypeError(f"pool must be an aiopar.Pool or None, got {type(pool).__name__}")
    return pool


@overload
async def amap(
    func: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None = None,
    ordered: bool = True,
    progress: ProgressOption = False,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
    pool: Pool | None = None,
) -> list[R]: ...
@overload
async def amap(
    func: Callable[[T], R],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None = None,
    ordered: bool = True,
    progress: ProgressOption = False,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
    pool: Pool | None = None,
) -> list[R]: ...
async def amap(
    func: Callable[[T], Any],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None = None,
    ordered: bool = True,
    progress: ProgressOption = False,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
    pool: Pool | None = None,
) -> list[Any]:
    """Return ``list(map(func, items))``, computed in worker processes, in chunks.

    ``func`` may be an ``async def`` function, run on each worker's event loop, up to
    ``concurrency`` items at once per worker. See :meth:`aiopar.Pool.amap`;
    ``pool=None`` uses the default pool.
    """
    return await _pool(pool).amap(
        func,
        items,
        chunksize=chunksize,
        ordered=ordered,
        progress=progress,
        cancel=cancel,
        concurrency=concurrency,
    )


@overload
async def starmap(
    func: Callable[[*Ts], Awaitable[R]],
    items: Iterable[tuple[*Ts]] | AsyncIterable[tuple[*Ts]],
    *,
    chunksize: int | None = None,
    ordered: bool = True,
    progress: ProgressOption = False,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
    pool: Pool | None = None,
) -> list[R]: ...
@overload
async def starmap(
    func: Callable[[*Ts], R],
    items: Iterable[tuple[*Ts]] | AsyncIterable[tuple[*Ts]],
    *,
    chunksize: int | None = None,
    ordered: bool = True,
    progress: ProgressOption = False,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
    pool: Pool | None = None,
) -> list[R]: ...
async def starmap(
    func: Callable[[*Ts], Any],
    items: Iterable[tuple[*Ts]] | AsyncIterable[tuple[*Ts]],
    *,
    chunksize: int | None = None,
    ordered: bool = True,
    progress: ProgressOption = False,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
    pool: Pool | None = None,
) -> list[Any]:
    """Return ``[func(*args) for args in items]``, computed in worker processes, in chunks.

    See :meth:`aiopar.Pool.starmap`; ``pool=None`` uses the default pool.
    """
    return await _pool(pool).starmap(
        func,
        items,
        chunksize=chunksize,
        ordered=ordered,
        progress=progress,
        cancel=cancel,
        concurrency=concurrency,
    )


@overload
def imap(
    func: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None = None,
    ordered: bool = True,
    max_inflight: int | None = None,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
    pool: Pool | None = None,
) -> AsyncGenerator[R, None]: ...
@overload
def imap(
    func: Callable[[T], R],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None = None,
    ordered: bool = True,
    max_inflight: int | None = None,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
    pool: Pool | None = None,
) -> AsyncGenerator[R, None]: ...
def imap(
    func: Callable[[T], Any],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None = None,
    ordered: bool = True,
    max_inflight: int | None = None,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
    pool: Pool | None = None,
) -> AsyncGenerator[Any, None]:
    """Yield ``func(item)`` for each item as results come, with bounded memory.

    See :meth:`aiopar.Pool.imap`; ``pool=None`` uses the default pool.
    """
    return _pool(pool).imap(
        func,
        items,
        chunksize=chunksize,
        ordered=ordered,
        max_inflight=max_inflight,
        cancel=cancel,
        concurrency=concurrency,
    )


async def amap_chunks(
    func: Callable[[Any], Any],
    data: Any,
    *,
    chunks: int | None = None,
    chunksize: int | None = None,
    combine: str | Callable[[list[Any]], Any] | None = "concat",
    progress: ProgressOption = False,
    cancel: CancelMode | None = None,
    pool: Pool | None = None,
) -> Any:
    """Cut ``data`` into pieces, call ``func(piece)`` in worker processes, join the answers.

    See :meth:`aiopar.Pool.amap_chunks`; ``pool=None`` uses the default pool.
    """
    return await _pool(pool).amap_chunks(
        func,
        data,
        chunks=chunks,
        chunksize=chunksize,
        combine=combine,
        progress=progress,
        cancel=cancel,
    )


@overload
def submit(
    func: Callable[..., Awaitable[R]], /, *args: Any, pool: Pool | None = None, **kwargs: Any
) -> TaskRef[R]: ...
@overload
def submit(
    func: Callable[..., R], /, *args: Any, pool: Pool | None = None, **kwargs: Any
) -> TaskRef[R]: ...
def submit(
    func: Callable[..., Any], /, *args: Any, pool: Pool | None = None, **kwargs: Any
) -> TaskRef[Any]:
    """Schedule ``func(*args, **kwargs)`` in a worker process; return a :class:`TaskRef`.

    See :meth:`aiopar.Pool.submit`; ``pool=None`` uses the default pool.
    """
    return _pool(pool).submit(func, *args, **kwargs)


def put(value: T, *, pool: Pool | None = None) -> TaskRef[T]:
    """Store ``value`` once, for any number of tasks; return a finished :class:`TaskRef`.

    See :meth:`aiopar.Pool.put`; ``pool=None`` uses the default pool.
    """
    return _pool(pool).put(value)


async def gather(
    *refs_or_awaitables: Awaitable[Any], return_exceptions: bool = False, pool: Pool | None = None
) -> list[Any]:
    """Wait for TaskRefs and other awaitables; return their results in order.

    Like :func:`asyncio.gather`, on asyncio, uvloop and trio. On the first failure the
    others are cancelled and that exception is raised, unless ``return_exceptions=True``,
    in which case exceptions are returned in place of results.

    ``pool`` is accepted like on every module-level function, and checked, but gather
    starts no work of its own: each TaskRef runs on the pool it was submitted to.

    Cancellation: cancels every awaitable still pending (TaskRefs as ``await ref`` would).
    """
    if pool is not None:
        _pool(pool)
    return await _gather.gather(*refs_or_awaitables, return_exceptions=return_exceptions)


@overload
def remote(
    func: Callable[P, R], *, pool: Pool | None = None, **options: Any
) -> RemoteFunction[P, R]: ...
@overload
def remote(
    func: None = None, *, pool: Pool | None = None, **options: Any
) -> Callable[[Callable[P, R]], RemoteFunction[P, R]]: ...
def remote(
    func: Callable[P, R] | None = None, *, pool: Pool | None = None, **options: Any
) -> RemoteFunction[P, R] | Callable[[Callable[P, R]], RemoteFunction[P, R]]:
    """Ray-style decorator: ``f.remote(*args)`` submits ``f``; ``f(*args)`` runs it here.

    Use as ``@aiopar.remote``, ``@aiopar.remote(pool=pool)`` or with the options of
    :meth:`aiopar.RemoteFunction.options`: ``@aiopar.remote(cancel="kill", retries=2)``.
    With ``pool=None``, ``.remote()`` uses the default pool at call time.

    Raises:
        TypeError: for an option aiopar does not have (Ray's ``num_cpus`` and the
            like), naming the aiopar way.
    """
    settings = TaskOptions().merged({"pool": pool, **options})
    if func is None:
        return lambda f: RemoteFunction(f, options=settings)
    return RemoteFunction(func, options=settings)


@overload
async def tree_reduce(
    func: Callable[[T, T], Awaitable[T]],
    items: Iterable[T | Awaitable[T]] | AsyncIterable[T | Awaitable[T]],
    *,
    initial: T = NO_INITIAL,
    chunksize: int | None = None,
    ordered: bool = True,
    cancel: CancelMode | None = None,
    pool: Pool | None = None,
) -> T: ...
@overload
async def tree_reduce(
    func: Callable[[T, T], T],
    items: Iterable[T | Awaitable[T]] | AsyncIterable[T | Awaitable[T]],
    *,
    initial: T = NO_INITIAL,
    chunksize: int | None = None,
    ordered: bool = True,
    cancel: CancelMode | None = None,
    pool: Pool | None = None,
) -> T: ...
async def tree_reduce(
    func: Callable[[Any, Any], Any],
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    initial: Any = NO_INITIAL,
    chunksize: int | None = None,
    ordered: bool = True,
    cancel: CancelMode | None = None,
    pool: Pool | None = None,
) -> Any:
    """``functools.reduce(func, items[, initial])`` for associative ``func``, as a tree.

    See :meth:`aiopar.Pool.tree_reduce`; ``pool=None`` uses the default pool.
    """
    return await _pool(pool).tree_reduce(
        func, items, initial=initial, chunksize=chunksize, ordered=ordered, cancel=cancel
    )
