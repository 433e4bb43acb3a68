"""Chunked maps: ``imap`` (the pipeline), ``amap`` (imap collected) and ``amap_chunks``.

The pipeline of ``imap``, all on the caller's event loop but for the work itself::

    items ──take(size)──► chunk ──► Job(MAP) ──► dispatcher ──► worker: [func(x) for x in chunk]
      ▲  (sync or async       sizes from ChunkSizer                              │
      │   iterator)                                                              ▼
      └── refill while fewer than `max_inflight` items are out ◄── result list, yielded
                                                                   in order or as finished

Items are taken lazily, so an endless async source is read only as fast as results are
consumed. Chunks are pickled in the executor's feeder thread, never on the loop.
"""

from __future__ import annotations

import collections
import contextlib
import sys
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Sequence,
    Sized,
)
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import anyio

from . import _packing, _shm
from ._checks import check_items, is_coroutine_function
from ._chunks import ChunkSizer, check_chunk_args, check_positive, nbytes, split, take
from ._chunks import combine as combine_answers
from ._codepickle import func_name
from ._coroutine_jobs import check_concurrency, coroutine_chunksize, job_function
from ._envelopes import CALL, MAP
from ._job import Job
from ._star import AsyncStar, Star
from ._waiting import FutureWatcher

if TYPE_CHECKING:
    from ._pool_base import CancelMode, PoolBase

__all__ = ["ProgressBar", "ProgressOption", "amap", "amap_chunks", "imap", "starmap"]

T = TypeVar("T")
R = TypeVar("R")

#: Default ``max_inflight`` of ``imap``, per worker: items taken from the source and not
#: yet yielded. Chunks of cheap items then still hold hundreds of items each.
IMAP_INFLIGHT_PER_WORKER = 1024

# Answers bigger than this are joined in a worker thread, off the event loop.
_COMBINE_OFF_LOOP_BYTES = 1 << 20


def _iterate(items: object) -> tuple[Iterator[Any] | AsyncIterator[Any], int | None]:
    """An iterator over ``items`` and its length when known; TypeError if not iterable."""
    if isinstance(items, AsyncIterable):
        return aiter(items), None
    if isinstance(items, str | bytes):
        raise TypeError(
            f"items is a {type(items).__name__}; map over a list of items instead "
            "(wrap it: [text]) or over list(text) to map its characters"
        )
    if not isinstance(items, Iterable):
        raise TypeError(
            f"items must be an iterable or async iterable, got {type(items).__name__}: {items!r}"
        )
    length = len(items) if isinstance(items, Sized) else None
    return iter(items), length


class ProgressBar(Protocol):
    """What ``progress=`` accepts besides True and "always": a tqdm-like bar."""

    def update(self, n: int = 1, /) -> object: ...


ProgressOption = bool | Literal["always"] | ProgressBar
"""``progress=``: False, True (a bar on a terminal or in a notebook), "always" (a bar
on stderr even when it is not a terminal: CI logs), or a bar of your own."""


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (tqdm.auto draws a widget there)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


class _Progress:
    """The progress bar of a call, if asked for; see :data:`ProgressOption`.

    ``True`` draws with ``tqdm.auto``: a widget in a notebook, text on a terminal,
    nothing when stderr is redirected; ``"always"`` draws text even then. A bar given
    by the caller is updated, and left open for the caller to close.
    """

    def __init__(self, progress: object, total: int | None, desc: str) -> None:
        self._bar: Any = None
        self._owned = False
        if progress is False or progress is None:
            return
        if progress is True or (isinstance(progress, str) and progress == "always"):
            try:
                from tqdm.auto import tqdm
            except ImportError:
                raise ImportError(f"progress={progress!r} needs tqdm: pip install tqdm") from None
            # disable=None: tqdm draws on a terminal only. In a notebook (where stderr
            # is no terminal) tqdm.auto's widget, or its text bar without ipywidgets.
            disable = None if progress is True and not _in_notebook() else False
            self._bar = tqdm(total=total, desc=desc, disable=disable)
            self._owned = True
        elif callable(getattr(progress, "update", None)):
            self._bar = progress
        else:
            raise TypeError(
                'progress must be True, False, "always" (draw even when stderr is not a '
                f"terminal) or a tqdm-like bar with an update() method, got {progress!r}"
            )

    def update(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None and self._owned:
            self._bar.close()


async def _chunk_results(
    pool: PoolBase,
    func: Callable[[Any], Any],
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    chunksize: int | None,
    ordered: bool,
    max_inflight: int | None,
    progress: ProgressOption = False,
    caller: str = "imap",
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
) -> AsyncGenerator[list[Any], None]:
    """Yield the result list of each chunk; the engine of imap and amap."""
    chunksize = check_positive("chunksize", chunksize)
    max_inflight = check_positive("max_inflight", max_inflight)
    blob, concurrency = job_function(func, check_concurrency(concurrency), pool.concurrency)
    source, length = _iterate(items)
    pool._require_dispatcher()
    name = func_name(func)
    plain = False  # every item builtin data: chunks are sent as they are (Job.plain)
    if isinstance(items, Sequence):  # all of it, before anything runs
        plain = await check_items(items, f"{caller}({name})")
    if concurrency and chunksize is None:  # an async def: chunks that feed `concurrency`
        chunksize = coroutine_chunksize(concurrency, pool.workers, length)
    sizer = ChunkSizer(pool.workers, chunksize, length)
    # A list is cut by slicing (a copy of pointers), not taken item by item.
    sliced = items if isinstance(items, list) and type(items) is list else None
    limit = max_inflight
    if limit is None and caller == "imap":  # bounded memory by default, see imap()
        limit = IMAP_INFLIGHT_PER_WORKER * pool.workers
    out: collections.deque[Job] = collections.deque()  # sent, results not yet yielded
    items_out = 0
    taken = 0  # items taken from the source so far
    exhausted = False
    count = 0
    watcher = FutureWatcher()
    bar = _Progress(progress, length, name)
    try:
        while True:
            while (
                not exhausted
                and sizer.ready(len(out))
                and len(out) < 4 * pool.workers
                and (limit is None or items_out < limit)
            ):
                size = sizer.next_size()
                if limit is not None:
                    size = min(size, limit - items_out)
                if sliced is not None:
                    chunk = sliced[taken : taken + size]
                else:
                    chunk = await take(source, size)
                if len(chunk) < size:
                    exhausted = True
                if not chunk:
                    break
                if not isinstance(items, Sequence):  # an iterator: chunk by chunk
                    plain = await check_items(chunk, f"{caller}({name})", start=taken)
                count += 1
                job = Job(blob, MAP, chunk, f"chunk {count} of {caller}({name})")
                job.plain = plain and type(chunk) is list
                job.concurrency = concurrency
                job.first_item = taken
                job.count = len(chunk)
                taken += len(chunk)
                items_out += len(chunk)
                out.append(job)
                watcher.watch(job.future)
                pool._send(job)
            if not out:
                return
            if ordered:
                job = out[0]
                if job.future.done():
                    # Ready already: still one turn of the loop per chunk, so that a
                    # consumer that never awaits can be cancelled and lets others run.
                    await anyio.lowlevel.checkpoint()
                else:
                    await watcher.wait_for(job.future)
                out.popleft()
                # The futures that finished meanwhile are read in their turn from
                # `out`: the watcher need not keep them (an endless imap would pile
                # them up).
                watcher.forget_finished()
            else:
                if watcher.has_finished():
                    await anyio.lowlevel.checkpoint()  # as above
                finished = await watcher.next_finished()
                job = next(j for j in out if j.future is finished)
                out.remove(job)
            result: list[Any] = job.future.result()
            size = job.count
            items_out -= size
            sizer.observe(size, job.elapsed)
            bar.update(size)
            yield result
    except BaseException as exc:
        await pool._abandon(out, watcher, exc, cancel)
        raise
    finally:
        bar.close()


async def imap(
    pool: PoolBase,
    func: Callable[[T], R],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None,
    ordered: bool,
    max_inflight: int | None,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
) -> AsyncGenerator[R, None]:
    results = _chunk_results(
        pool,
        func,
        items,
        chunksize=chunksize,
        ordered=ordered,
        max_inflight=max_inflight,
        cancel=cancel,
        concurrency=concurrency,
    )
    async with contextlib.aclosing(results):
        async for chunk in results:
            for value in chunk:
                yield value


async def amap(
    pool: PoolBase,
    func: Callable[[T], R],
    items: Iterable[T] | AsyncIterable[T],
    *,
    chunksize: int | None,
    ordered: bool,
    progress: ProgressOption,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
) -> list[R]:
    values: list[R] = []
    results = _chunk_results(
        pool,
        func,
        items,
        chunksize=chunksize,
        ordered=ordered,
        max_inflight=None,
        progress=progress,
        caller="amap",
        cancel=cancel,
        concurrency=concurrency,
    )
    async with contextlib.aclosing(results):
        async for chunk in results:
            values.extend(chunk)
    return values


async def starmap(
    pool: PoolBase,
    func: Callable[..., R],
    items: Iterable[Iterable[Any]] | AsyncIterable[Iterable[Any]],
    *,
    chunksize: int | None,
    ordered: bool,
    progress: ProgressOption,
    cancel: CancelMode | None = None,
    concurrency: int | None = None,
) -> list[R]:
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}: {func!r}")
    return await amap(
        pool,
        AsyncStar(func) if is_coroutine_function(func) else Star(func),
        items,
        chunksize=chunksize,
        ordered=ordered,
        progress=progress,
        cancel=cancel,
        concurrency=concurrency,
    )


async def amap_chunks(
    pool: PoolBase,
    func: Callable[[Any], Any],
    data: Any,
    *,
    chunks: int | None,
    chunksize: int | None,
    combine: str | Callable[[list[Any]], Any] | None,
    progress: ProgressOption,
    cancel: CancelMode | None = None,
) -> Any:
    chunks, chunksize = check_chunk_args(chunks, chunksize)
    if not (combine is None or combine == "concat" or callable(combine)):
        raise ValueError(f'combine must be "concat", None or a callable, got {combine!r}')
    blob, concurrency = job_function(func, None, pool.concurrency)
    dispatcher = pool._require_dispatcher()
    pieces = split(data, chunks=chunks, chunksize=chunksize, workers=pool.workers)
    name = func_name(func)
    if isinstance(data, Sequence):
        await check_items(data, f"amap_chunks({name})")
    jobs = [
        Job(blob, CALL, ((piece,), {}), f"chunk {index + 1}/{len(pieces)} of amap_chunks({name})")
        for index, piece in enumerate(pieces)
    ]
    for job in jobs:
        job.concurrency = concurrency
    output = None
    if combine == "concat" and dispatcher.arena is not None and _shm.eligible(data):
        # Answers the size of their piece are written in place, already concatenated.
        output = _shm.create_output(dispatcher.arena, data.nbytes)
        populate = output.touched >= data.nbytes  # a reused segment: its pages exist
        offset = 0
        for job, piece in zip(jobs, pieces, strict=True):
            job.destination = _packing.Destination(output.name, offset, piece.nbytes, populate)
            offset += piece.nbytes
    watcher = FutureWatcher()
    bar = _Progress(progress, len(jobs), name)
    try:
        for job in jobs:
            watcher.watch(job.future)
            pool._send(job)
        for _ in jobs:
            finished = await watcher.next_finished()
            finished.result()  # raise the first failure at once
            bar.update(1)
    except BaseException as exc:
        await pool._abandon(jobs, watcher, exc, cancel)
        if output is not None:
            _shm.release_output(output, written=False)
        raise
    finally:
        bar.close()
    answers = [job.future.result() for job in jobs]
    if output is not None:
        joined = _shm.joined_in_place(answers, output)
        _shm.release_output(output, written=joined is not None)
        if joined is not None:
            return joined
    if combine is None:
        return answers
    if sum(nbytes(answer) for answer in answers) > _COMBINE_OFF_LOOP_BYTES:
        return await anyio.to_thread.run_sync(combine_answers, answers, combine)
    return combine_answers(answers, combine)
