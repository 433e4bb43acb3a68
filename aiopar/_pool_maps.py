"""The map methods of :class:`aiopar.Pool`: ``amap``, ``imap``, ``starmap``, ``amap_chunks``.

A part of ``Pool`` (its base class), kept apart for size. The methods are thin: the
maps live in ``_maps.py``. Everything here runs in the caller's thread.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, TypeVar, TypeVarTuple, overload

from . import _maps
from ._maps import ProgressOption
from ._pool_base import CancelMode, PoolBase

__all__ = ["MapMethods"]

R = TypeVar("R")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class MapMethods(PoolBase):
    """The chunked maps of a pool (see :class:`aiopar.Pool`)."""

    @overload
    async def amap(
        self,
        func: Callable[[T], Awaitable[R]],
        items: Iterable[T] | AsyncIterable[T],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        progress: ProgressOption = False,
        cancel: CancelMode | None = None,
        concurrency: int | None = None,
    ) -> list[R]: ...
    @overload
    async def amap(
        self,
        func: Callable[[T], R],
        items: Iterable[T] | AsyncIterable[T],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        progress: ProgressOption = False,
        cancel: CancelMode | None = None,
        concurrency: int | None = None,
    ) -> list[R]: ...
    async def amap(
        self,
        func: Callable[[T], Any],
        items: Iterable[T] | AsyncIterable[T],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        progress: ProgressOption = False,
        cancel: CancelMode | None = None,
        concurrency: int | None = None,
    ) -> list[Any]:
        """Return ``list(map(func, items))``, computed in the workers, in chunks.

        Args:
            func: a picklable function of one item (lambdas and closures work too),
                or an ``async def`` function: its coroutines run on an event loop
                each worker keeps, up to ``concurrency`` at once per worker.
            items: any iterable or async iterable.
            chunksize: items per chunk; None sizes chunks by the measured cost of an item.
            ordered: False returns results in the order they complete.
            progress: True shows a tqdm progress bar on a terminal or in a notebook;
                ``"always"`` also when stderr is not a terminal (CI logs); or a tqdm
                bar of your own, to be updated.
            cancel: what cancelling this call does to its jobs already running in a
                worker: ``"wait"`` or ``"kill"``; None (default) follows the pool's
                ``cancel`` option.
            concurrency: for an ``async def`` ``func`` only: how many items one
                worker runs at once (default: the pool's ``concurrency``, 100). A
                worker runs one chunk at a time, so with ``chunksize=None`` chunks hold
                at least this many items (up to four times as many).

        Cancellation: chunks not yet started are dropped; running ones are awaited or
        killed, as ``cancel`` (or else the pool's ``cancel`` option) says. The
        coroutines of an ``async def`` ``func`` are cancelled in their worker (they
        see ``CancelledError``, their ``finally`` blocks run) with ``"wait"`` too:
        the worker lives on.
        """
        return await _maps.amap(
            self,
            func,
            items,
            chunksize=chunksize,
            ordered=ordered,
            progress=progress,
            cancel=self._check_cancel(cancel),
            concurrency=concurrency,
        )

    @overload
    def imap(
        self,
        func: Callable[[T], Awaitable[R]],
        items: Iterable[T] | AsyncIterable[T],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        max_inflight: int | None = None,
        cancel: CancelMode | None = None,
        concurrency: int | None = None,
    ) -> AsyncGenerator[R, None]: ...
    @overload
    def imap(
        self,
        func: Callable[[T], R],
        items: Iterable[T] | AsyncIterable[T],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        max_inflight: int | None = None,
        cancel: CancelMode | None = None,
        concurrency: int | None = None,
    ) -> AsyncGenerator[R, None]: ...
    def imap(
        self,
        func: Callable[[T], Any],
        items: Iterable[T] | AsyncIterable[T],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        max_inflight: int | None = None,
        cancel: CancelMode | None = None,
        concurrency: int | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Yield ``func(item)`` for each item as results come, with bounded memory.

        At most ``max_inflight`` items are taken from ``items`` and not yet yielded at
        any time (default: 1024 per worker), so an endless source
        is processed with bounded memory. Close the iterator (``aclose()``, or leave an
        ``async with contextlib.aclosing(...)`` block) to stop early.

        ``cancel`` and ``concurrency`` (for an ``async def`` ``func``) are as in
        :meth:`amap`; ``max_inflight`` also bounds the chunk size.

        Cancellation: as :meth:`amap`; closing the iterator early counts as cancelling.
        """
        return _maps.imap(
            self,
            func,
            items,
            chunksize=chunksize,
            ordered=ordered,
            max_inflight=max_inflight,
            cancel=self._check_cancel(cancel),
            concurrency=concurrency,
        )

    async def amap_chunks(
        self,
        func: Callable[[Any], Any],
        data: Any,
        *,
        chunks: int | None = None,
        chunksize: int | None = None,
        combine: str | Callable[[list[Any]], Any] | None = "concat",
        progress: ProgressOption = False,
        cancel: CancelMode | None = None,
    ) -> Any:
        """Cut ``data`` into contiguous pieces, call ``func(piece)`` in the workers, join.

        Args:
            func: a function of one piece.
            data: a numpy array (cut along axis 0), a pandas DataFrame or Series (cut
                by rows), or any sequence (cut by slicing).
            chunks: number of pieces; default one per worker, more (a multiple of the
                workers) for arrays and frames over 16 MiB a piece.
            chunksize: rows per piece. Give ``chunks`` or ``chunksize``, not both.
            combine: ``"concat"`` joins the answers with ``numpy.concatenate``,
                ``pandas.concat`` or list concatenation, by the type of the first
                answer; None returns the list of answers; a callable gets that list.
            progress: True shows a tqdm progress bar on a terminal or in a notebook;
                ``"always"`` also when stderr is not a terminal (CI logs); or a tqdm
                bar of your own, to be updated.
            cancel: what cancelling this call does to its jobs already running in a
                worker: ``"wait"`` or ``"kill"``; None (default) follows the pool's
                ``cancel`` option.

        Cancellation: as :meth:`amap`.
        """
        return await _maps.amap_chunks(
            self,
            func,
            data,
            chunks=chunks,
            chunksize=chunksize,
            combine=combine,
            progress=progress,
            cancel=self._check_cancel(cancel),
        )

    @overload
    async def starmap(
        self,
        func: Callable[[*Ts], Awaitable[R]],
        items: Iterable[tuple[*Ts]] | AsyncIterable[tuple[*Ts]],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        progress: ProgressOption = False,
        cancel: CancelMode | None = None,
        concurrency: int | None = None,
    ) -> list[R]: ...
    @overload
    async def starmap(
        self,
        func: Callable[[*Ts], R],
        items: Iterable[tuple[*Ts]] | AsyncIterable[tuple[*Ts]],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        progress: ProgressOption = False,
        cancel: CancelMode | None = None,
        concurrency: int | None = None,
    ) -> list[R]: ...
    async def starmap(
        self,
        func: Callable[[*Ts], Any],
        items: Iterable[tuple[*Ts]] | AsyncIterable[tuple[*Ts]],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        progress: ProgressOption = False,
        cancel: CancelMode | None = None,
        concurrency: int | None = None,
    ) -> list[Any]:
        """Return ``[func(*args) for args in items]``, computed in the workers, in chunks.

        As :meth:`amap`, but each item is a tuple of arguments, unpacked in the call
        (``multiprocessing.Pool.starmap``, ``itertools.starmap``): for example
        ``await pool.starmap(pow, [(2, 5), (3, 2)])`` returns ``[32, 9]``. The options
        are those of :meth:`amap` (``concurrency`` too, for an ``async def`` ``func``).

        Raises:
            TypeError: when an item is not a tuple (or other iterable) of arguments.

        Cancellation: as :meth:`amap`.
        """
        return await _maps.starmap(
            self,
            func,
            items,
            chunksize=chunksize,
            ordered=ordered,
            progress=progress,
            cancel=self._check_cancel(cancel),
            concurrency=concurrency,
        )
