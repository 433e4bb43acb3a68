"""Cutting work into chunks, sizing them, and joining the answers.

* :func:`split` cuts a numpy array (axis 0), a pandas DataFrame/Series (rows) or a
  sequence (slices) into contiguous pieces. Pieces are views or slices, so cutting is
  cheap enough for the event-loop thread; no trailing item is ever dropped. By default
  there is one piece per worker, more for big arrays and frames: pieces of at most
  :data:`PIECE_BYTES`, in a multiple of the number of workers.
* :class:`ChunkSizer` picks the size of the next chunk of a map. With no ``chunksize``
  given it sends one probe item per worker and measures how long an item takes in the
  worker. A single item's time overstates a cheap item's cost many times over (the
  worker's timer and a cold cache weigh more than the item), so until a chunk of
  several items has been measured, at most two chunks per worker are out (the first,
  large shares of a guided map); the estimate then weighs each measurement by its
  items. When the number of items is known, each chunk takes a share of what is left
  (guided scheduling): large chunks first, smaller and smaller ones toward the end, so
  that the workers finish together with few chunks sent. Otherwise chunks carry about
  :data:`TARGET_CHUNK_SECONDS` of work each.
* :func:`combine` joins per-piece answers by the type of the first one.
* :func:`take` pulls the next chunk of items from a sync or async iterator.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "ChunkSizer",
    "check_chunk_args",
    "check_count",
    "check_positive",
    "combine",
    "split",
    "take",
]

#: How much work one chunk should carry once the cost of an item is known, when the
#: number of items is not. Sending a chunk costs the parent process a few hundred
#: microseconds of CPU; 50 ms keeps that overhead around 1 %.
TARGET_CHUNK_SECONDS = 0.05

#: With a known number of items, the next chunk takes ``1 / (GUIDED_SHARES * workers)`` of
#: those left, within the two bounds below. 64 items of 17 ms on 2 workers go in 14
#: chunks (16, 12, 9, ... 1 items) instead of 32 chunks of 2 at the target duration,
#: and the last ones are single items.
GUIDED_SHARES = 2

#: Smallest chunk toward the end of a guided map, in seconds of work (at least one item):
#: cheap items do not end in a trail of tiny chunks that cost more to send than to run.
TAIL_CHUNK_SECONDS = 0.01

#: The smallest chunk of a guided map never needs more than ``1 / (TAIL_SHARES * workers)``
#: of all its items (nor fewer than :data:`TAIL_ITEMS`): cheap items worth less than the
#: tail duration in all are still spread over every worker, in a few chunks each.
TAIL_SHARES = 4

#: See :data:`TAIL_SHARES`: fewer cheap items than this cost more to send apart than
#: to run in one chunk.
TAIL_ITEMS = 1000

#: Largest chunk, in seconds of work (at least one item): a chunk is what a worker
#: cannot give up halfway (cancellation) and what a progress bar counts at once.
MAX_CHUNK_SECONDS = 0.5

#: Largest piece ``amap_chunks`` cuts from a big array or frame by default. The
#: temporaries numpy makes while working on a piece are about its size; up to 32 MiB,
#: glibc serves them from memory the worker already has and keeps after freeing them.
#: Bigger ones are fresh pages each call, with a page fault and a cleared page every
#: 4 KiB. Smaller pieces also let copying the next piece overlap the computing.
PIECE_BYTES = 16 << 20


def _integer(name: str, value: object, wanted: str) -> int:
    """``value`` as an int: ints and integer-likes (``operator.index``: numpy integers),
    not bools and not floats."""
    if not isinstance(value, bool):
        try:
            return operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            pass
    raise TypeError(f"{name} must be {wanted}, got {value!r}")


def check_positive(name: str, value: object) -> int | None:
    """Return ``value`` as an int >= 1 (or None); TypeError/ValueError naming ``name``."""
    if value is None:
        return None
    number = _integer(name, value, "a positive int or None")
    if number < 1:
        raise ValueError(f"{name} must be at least 1, got {number}; use None for automatic")
    return number


def check_count(name: str, value: object) -> int:
    """Return ``value`` as an int >= 0; TypeError/ValueError naming ``name``."""
    number = _integer(name, value, "an int >= 0")
    if number < 0:
        raise ValueError(f"{name} must be an int >= 0, got {number}")
    return number


def check_chunk_args(chunks: object, chunksize: object) -> tuple[int | None, int | None]:
    """Validate ``chunks``/``chunksize`` of amap_chunks: each positive, not both.

    Returns them as ints (or None).
    """
    pieces = check_positive("chunks", chunks)
    rows = check_positive("chunksize", chunksize)
    if pieces is not None and rows is not None:
        raise ValueError(
            f"give chunks (number of pieces) or chunksize (rows per piece), not both: "
            f"got chunks={pieces}, chunksize={rows}"
        )
    return pieces, rows


def _kind(data: object) -> str:
    module = type(data).__module__.split(".")[0]
    if module == "numpy" and hasattr(data, "shape"):
        return "array"
    if module == "pandas" and hasattr(data, "iloc"):
        return "frame"
    needs = "amap_chunks() needs a numpy array, a pandas DataFrame/Series or a sequence as data"
    if isinstance(data, Mapping):
        raise TypeError(
            f"{needs}, got {type(data).__name__}: it cuts data into pieces by slicing; for "
            "a dict use amap() over its items(), or amap_chunks() over list(data.items())"
        )
    if isinstance(data, Sequence) or (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        try:
            data[0:0]
        except Exception as exc:
            raise TypeError(
                f"{needs}, got {type(data).__name__}, which cannot be cut by slicing "
                f"({type(exc).__name__}: {exc}); convert it with list(data), or use amap() "
                "or imap()"
            ) from None
        return "sequence"
    raise TypeError(f"{needs}, got {type(data).__name__}; for other iterables use amap() or imap()")


def split(data: Any, *, chunks: int | None, chunksize: int | None, workers: int) -> list[Any]:
    """Cut ``data`` into contiguous pieces (views where possible); see module docstring.

    Always returns at least one piece (an empty one for empty data), so the function
    is called even on empty input and its answer sets the result type.
    """
    kind = _kind(data)
    if kind == "array" and getattr(data, "ndim", 1) == 0:
        raise ValueError("amap_chunks() cannot split a 0-d array; give an array with ndim >= 1")
    length = len(data)
    if chunksize is not None:
        count = max(1, math.ceil(length / chunksize))
    elif chunks is not None:
        count = max(1, min(chunks, length))
    else:
        count = max(1, min(_default_count(data, workers), length))
    bounds = _bounds(length, count, chunksize)
    if kind == "frame":
        return [data.iloc[start:stop] for start, stop in bounds]
    return [data[start:stop] for start, stop in bounds]


def _default_count(data: Any, workers: int) -> int:
    """One piece per worker, or more to keep pieces under PIECE_BYTES (a multiple of
    ``workers``, so that every worker gets as many)."""
    size = nbytes(data)
    if size <= workers * PIECE_BYTES:
        return workers
    return math.ceil(size / (workers * PIECE_BYTES)) * workers


def _bounds(length: int, count: int, chunksize: int | None) -> list[tuple[int, int]]:
    if chunksize is not None:
        return [
            (start, min(start + chunksize, length)) for start in range(0, max(length, 1), chunksize)
        ]
    base, extra = divmod(length, count)
    bounds = []
    start = 0
    for index in range(count):
        stop = start + base + (1 if index < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def combine(answers: list[Any], how: str | Callable[[list[Any]], Any] | None) -> Any:
    """Join per-piece answers: ``"concat"`` by type of the first, None, or a callable."""
    if how is None:
        return answers
    if callable(how):
        return how(answers)
    if how != "concat":
        raise ValueError(f'combine must be "concat", None or a callable, got {how!r}')
    first = answers[0]
    module = type(first).__module__.split(".")[0]
    if module == "numpy" and hasattr(first, "shape"):
        import numpy as np

        if getattr(first, "ndim", 0) == 0:
            return np.stack(answers)
        return np.concatenate(answers)
    if module == "pandas" and hasattr(first, "iloc"):
        import pandas as pd

        return pd.concat(answers)
    if isinstance(first, list | tuple | range):
        return list(itertools.chain.from_iterable(answers))
    raise TypeError(
        f'combine="concat" cannot join answers of type {type(first).__name__}; '
        "return arrays, frames or lists from the function, or pass combine=None to get "
        "the list of answers, or a callable that joins them"
    )


def nbytes(value: Any) -> int:
    """Rough size in bytes of an array or frame (0 for anything else)."""
    size = getattr(value, "nbytes", None)
    if isinstance(size, int):
        return size
    memory = getattr(value, "memory_usage", None)
    if callable(memory):
        try:
            return int(memory(deep=False).sum())
        except Exception:
            return 0
    return 0


class ChunkSizer:
    """Chooses how many items go into the next chunk of a map.

    Args:
        workers: number of workers the chunks are spread over.
        chunksize: a fixed size, or None to adapt to the measured cost of an item.
        length: number of items, when known.
    """

    def __init__(self, workers: int, chunksize: int | None, length: int | None) -> None:
        self._workers = workers
        self._fixed = chunksize
        self._remaining = length
        # The smallest chunk a guided map needs, whatever an item costs (TAIL_SHARES).
        self._spread = (
            None if length is None else max(TAIL_ITEMS, math.ceil(length / (TAIL_SHARES * workers)))
        )
        self._seconds_per_item: float | None = None
        self._weight = 0.0  # how many items the estimate stands on, older ones fading
        self._probes = 0
        self._measured_chunk = False  # a chunk of more than one item has come back

    def ready(self, chunks_out: int = 0) -> bool:
        """False while probing: wait for a measurement before sending more chunks.

        ``chunks_out``: chunks sent and not yet observed. Until a chunk of several
        items has been measured, the estimate stands on single probe items, which
        overstate a cheap item's cost: then at most two chunks per worker are out, one
        running and one waiting behind it, so no worker idles while the first comes back.
        """
        if self._fixed is not None:
            return True
        if self._seconds_per_item is None:
            return self._probes < self._workers
        return self._measured_chunk or chunks_out < 2 * self._workers

    def next_size(self) -> int:
        """Size of the next chunk (at least 1)."""
        if self._fixed is not None:
            size = self._fixed
        elif self._seconds_per_item is None:
            self._probes += 1
            size = 1
        else:
            per_item = max(self._seconds_per_item, 1e-9)
            if self._remaining is None or self._spread is None:
                size = max(1, int(TARGET_CHUNK_SECONDS / per_item))
            else:
                share = math.ceil(self._remaining / (GUIDED_SHARES * self._workers))
                tail = min(max(1, int(TAIL_CHUNK_SECONDS / per_item)), self._spread)
                largest = max(1, int(MAX_CHUNK_SECONDS / per_item))
                size = max(1, min(max(share, tail), largest, self._remaining))
        if self._remaining is not None:
            self._remaining = max(0, self._remaining - size)
        return size

    def observe(self, items: int, seconds: float) -> None:
        """Record that a chunk of ``items`` items took ``seconds`` in a worker.

        The estimate is an average per item over the chunks measured, each weighed by
        its number of items, the weight of the older ones halved at each chunk: a chunk
        of thousands of items outweighs a probe item, and a change of cost shows within
        a few chunks.
        """
        if self._fixed is not None or items == 0:
            return
        if items > 1:
            self._measured_chunk = True
        if self._seconds_per_item is None:
            self._seconds_per_item = seconds / items
            self._weight = float(items)
            return
        kept = 0.5 * self._weight
        self._seconds_per_item = (kept * self._seconds_per_item + seconds) / (kept + items)
        self._weight = kept + items


async def take(source: Iterator[Any] | AsyncIterator[Any], size: int) -> list[Any]:
    """Up to ``size`` next items of a sync or async iterator (fewer at its end)."""
    if isinstance(source, Iterator):
        return list(itertools.islice(source, size))
    chunk = []
    for _ in range(size):
        try:
            chunk.append(await anext(source))
        except StopAsyncIteration:
            break
    return chunk
