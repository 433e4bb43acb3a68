"""Pickling with big numpy arrays diverted into shared memory, and unpickling them.

Arrays of at least :data:`_shm.THRESHOLD` bytes (plain ``numpy.ndarray``, no object
dtype) never travel inside a pickle. :func:`dump` pickles with a per-pickler
``dispatch_table`` entry for ``ndarray`` (so every other object keeps C-speed pickling)
that replaces each big array by an index into a table of :class:`_Entry` (segment name,
offset, shape, dtype, order); :func:`load_in_worker` / :func:`load_in_parent` map the
segments and put the arrays back.

    parent → worker (call arguments, pickled in the executor's feeder thread)
        an array that already lives in one of our segments (a task's result) is sent by
        name, without a copy; any other one is copied into a segment of the pool's
        arena. The worker maps it read-only: it cannot corrupt the caller's data.
    worker → parent (results, pickled in the worker)
        all big arrays of one result are copied into one segment: one the parent lent
        the job from its arena when it expects a result of that size (a segment used
        before: no fresh pages to fault in), else a new one under the name the parent
        chose for that job, so a crash cannot leak it; or, for an
        ``amap_chunks`` answer the size of its piece, into its :class:`Destination`
        slice of the call's output segment, where the answers stand concatenated. The
        parent adopts the segment: the caller gets arrays over it without any copy.
"""

from __future__ import annotations

import copyreg
import io
import mmap
import pickle
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from ._arena import Arena
from ._segments import Loan, Segment, _create, _worker_maps, _worker_targets, unlink
from ._shm import (
    _address,
    _adopted_name,
    _big,
    _Held,
    _held_by_name,
    _held_lock,
    _root,
    _root_buffer,
    adopt,
)

__all__ = ["Destination", "LoadFailed", "dump", "load_in_parent", "load_in_worker"]

_ALIGN = 64
_PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL


@dataclass(frozen=True)
class Destination:
    """Where a worker may write its answer: a slice of a parent-created segment.

    ``populate``: the segment's pages already exist (it is reused), so the worker maps
    them all at once.
    """

    name: str
    offset: int
    nbytes: int
    populate: bool = False


@dataclass
class _Entry:
    name: str
    offset: int
    shape: tuple[int, ...]
    dtype: Any
    order: Literal["C", "F"]


_table = threading.local()


def _from_entry(index: int) -> Any:
    return _table.current[index]


@dataclass
class _Packer:
    """Collects big arrays while pickling; see :func:`dump`."""

    parent: bool
    arena: Arena | None = None
    used: list[Segment] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)  # worker side: arrays to copy
    entries: list[_Entry | None] = field(default_factory=list)

    def reduce(self, array: Any) -> Any:
        if not _big(array):
            return array.__reduce_ex__(_PICKLE_PROTOCOL)
        order: Literal["C", "F"] = (
            "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        )
        index = len(self.entries)
        if self.parent:
            self.entries.append(self._place_in_parent(array, order))
        else:
            self.entries.append(None)
            self.pending.append((index, array, order))
        return (_from_entry, (index,))

    def _place_in_parent(self, array: Any, order: Literal["C", "F"]) -> _Entry:
        import numpy as np

        buffer = _root_buffer(array)
        name = _adopted_name(buffer)
        if (
            name is not None
            and isinstance(buffer, mmap.mmap)
            and (array.flags.c_contiguous or array.flags.f_contiguous)
        ):
            offset = _address(array) - _address(np.frombuffer(buffer, dtype=np.uint8))
            return _Entry(name, offset, array.shape, array.dtype, order)
        assert self.arena is not None
        segment = self.arena.take(array.nbytes)
        self.used.append(segment)
        view = np.ndarray(array.shape, array.dtype, buffer=segment.map, order=order)
        np.copyto(view, array)  # releases the GIL for big copies
        segment.touched = max(segment.touched, array.nbytes)
        return _Entry(segment.name, 0, array.shape, array.dtype, order)


def _pickler(file: io.BytesIO, packer: _Packer) -> pickle.Pickler:
    import numpy as np

    pickler = pickle.Pickler(file, protocol=_PICKLE_PROTOCOL)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[np.ndarray] = packer.reduce
    return pickler


def dump(
    obj: object,
    *,
    arena: Arena | None = None,
    result_segment: str | None = None,
    destination: Destination | None = None,
    loan: Loan | None = None,
) -> tuple[bytes, list[_Entry], list[Segment]]:
    """Pickle ``obj`` with its big arrays in shared memory.

    In the parent pass ``arena``; in a worker pass ``result_segment`` (the name the
    parent chose) and maybe ``destination`` and ``loan``. Returns the pickle, the array
    table and the arena segments used (to give back once the job is done).
    """
    packer = _Packer(parent=arena is not None, arena=arena)
    file = io.BytesIO()
    try:
        _pickler(file, packer).dump(obj)
        if packer.pending:
            _write_results(packer, result_segment, destination, loan)
    except BaseException:
        if arena is not None:
            arena.give_back(packer.used)
        raise
    return file.getvalue(), packer.entries, packer.used  # type: ignore[return-value]


def _write_results(
    packer: _Packer,
    result_segment: str | None,
    destination: Destination | None,
    loan: Loan | None,
) -> None:
    """Copy the result's big arrays into shared memory, in the first place that fits:
    the job's ``destination`` (one answer the size of its piece), the segment the parent
    lent (``loan``), or a new segment named ``result_segment``."""
    import numpy as np

    pending = packer.pending
    if destination is not None and len(pending) == 1:
        index, array, order = pending[0]
        if array.nbytes == destination.nbytes and order == "C":
            target = _worker_targets.get(destination.name, populate=destination.populate)
            view = np.ndarray(array.shape, array.dtype, buffer=target, offset=destination.offset)
            np.copyto(view, array)
            del view
            packer.entries[index] = _Entry(
                destination.name, destination.offset, array.shape, array.dtype, "C"
            )
            return
    offsets = []
    size = 0
    for _, array, _ in pending:
        offsets.append(size)
        size += -(-array.nbytes // _ALIGN) * _ALIGN
    if loan is not None and size <= loan.size:
        name = loan.name
        segment = _worker_targets.get(name, populate=loan.touched >= size)
        created = False
    elif result_segment is not None:
        name = result_segment
        segment = _create(result_segment, size)
        created = True
    else:
        raise RuntimeError("a big array result needs a result segment name")
    try:
        for (index, array, order), offset in zip(pending, offsets, strict=True):
            view = np.ndarray(array.shape, array.dtype, buffer=segment, offset=offset, order=order)
            np.copyto(view, array)
            del view
            packer.entries[index] = _Entry(name, offset, array.shape, array.dtype, order)
    except BaseException:
        if created:
            unlink(name)
        raise
    finally:
        if created:
            segment.close()


class LoadFailed:
    """Stands for call arguments a worker could not load; the job raises ``error``.

    Unpickling happens before the job runs, inside the executor's own loop: an
    exception there would kill the worker process and break the whole pool.
    """

    def __init__(self, error: BaseException) -> None:
        self.error = error


def load_in_worker(data: bytes, entries: list[_Entry]) -> Any:
    """Unpickle call arguments in a worker: arrays are read-only views of segments."""
    try:
        return _load(data, entries, token=None)
    except Exception as exc:
        return LoadFailed(exc)


def load_in_parent(data: bytes, entries: list[_Entry], token: str) -> Any:
    """Unpickle a result in the parent: result segments are adopted (see :func:`adopt`)."""
    return _load(data, entries, token=token)


def _load(data: bytes, entries: list[_Entry], *, token: str | None) -> Any:
    import numpy as np

    arrays = []
    if token is None:  # in a worker
        for entry in entries:
            segment = _worker_maps.get(entry.name)
            arrays.append(
                np.ndarray(
                    entry.shape,
                    entry.dtype,
                    buffer=segment,
                    offset=entry.offset,
                    order=entry.order,
                )
            )
    else:
        adopted: dict[str, _Held] = {}
        for entry in entries:
            with _held_lock:
                held = _held_by_name.get(entry.name)  # one of our output segments
            if held is None or held.token != token:
                if entry.name not in adopted:
                    adopted[entry.name] = adopt(entry.name, token)
                held = adopted[entry.name]
            arrays.append(
                _root(
                    held,
                    shape=entry.shape,
                    dtype=entry.dtype,
                    offset=entry.offset,
                    order=entry.order,
                )
            )
    _table.current = arrays
    try:
        return pickle.loads(data)
    finally:
        _table.current = None
