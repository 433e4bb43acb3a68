"""Shared memory for numpy arrays: the mappings that arrays handed to the caller live on.

How arrays get into and out of segments (pickling with big arrays diverted) is in
``_packing.py``; the segments themselves (names, mapping, a worker's cache of
mappings) in ``_segments.py``; the pool's segments kept for reuse in ``_arena.py``.
This module holds:

* :func:`adopt` / :func:`create_output` — parent mappings that arrays handed to the
  caller live on (a worker's result segment; an ``amap_chunks`` output segment). The
  pool keeps each mapping and counts the arrays over it; when the last one is
  garbage-collected, the "aiopar-unmap" thread gives the segment back to the arena, or
  (pool closed) unmaps it and removes the name. Unmapping a big segment takes tens of
  milliseconds: never on the event loop.
* the array helpers: which arrays go through shared memory (:data:`THRESHOLD`), and
  joining ``amap_chunks`` answers written back to back in one segment.
"""

from __future__ import annotations

import mmap
import queue
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from ._arena import Arena, _arenas, _arenas_lock
from ._segments import Segment, _attach, _track, unlink

__all__ = [
    "THRESHOLD",
    "adopt",
    "create_output",
    "eligible",
    "held_size",
    "joined_in_place",
    "release_output",
    "unlink_adopted",
]

THRESHOLD = 1 << 20


@dataclass(eq=False)
class _Held:
    """A parent mapping that arrays handed to the caller live on.

    We keep the mapping ourselves and count the arrays made directly over it
    (``roots``); when the last one is garbage-collected and nobody else needs it
    (``released``), the unmap thread gives the segment back to its pool's arena for
    reuse, or, once the pool is closed, closes it and removes its name. Unmapping and
    unlinking a big segment takes tens of milliseconds: never on the event loop.
    """

    name: str
    token: str
    segment: mmap.mmap
    released: bool
    touched: int = 0  # see Segment.touched
    linked: bool = True
    roots: int = 0


_held: dict[int, _Held] = {}  # by id(segment)
_held_by_name: dict[str, _Held] = {}
_held_lock = threading.Lock()


def _hold(name: str, token: str, segment: mmap.mmap, *, released: bool, touched: int = 0) -> _Held:
    held = _Held(name, token, segment, released, touched)
    with _held_lock:
        _held[id(segment)] = held
        _held_by_name[name] = held
    return held


def adopt(name: str, token: str) -> _Held:
    """Hold a segment a worker wrote for us: a lent one of the pool's arena, or a new
    one it created under the name we chose. Its arrays keep it (and its name) alive."""
    with _arenas_lock:
        arena = _arenas.get(token)
    lent = arena.claim(name) if arena is not None else None
    if lent is not None:
        return _hold(name, token, lent.map, released=True, touched=lent.size)
    segment = _attach(name, writable=True)
    _track(name)
    return _hold(name, token, segment, released=True, touched=len(segment))


def held_size(name: str) -> int | None:
    """The size of the held segment ``name`` (a job's result), if we hold it."""
    with _held_lock:
        held = _held_by_name.get(name)
        return None if held is None else len(held.segment)


def _root(held: _Held, **layout: Any) -> Any:
    """An array directly over ``held``'s mapping, counted so the mapping outlives it."""
    import numpy as np

    array = np.ndarray(buffer=held.segment, **layout)
    with _held_lock:
        held.roots += 1
    weakref.finalize(array, _root_gone, held)
    return array


def _root_gone(held: _Held) -> None:
    with _held_lock:
        held.roots -= 1
        done = held.roots == 0 and held.released
    if done:
        _unmapper.put(held)


def _forget(held: _Held) -> None:
    if _held.get(id(held.segment)) is held:
        del _held[id(held.segment)]
    if _held_by_name.get(held.name) is held:
        del _held_by_name[held.name]


def unlink_adopted(token: str) -> None:
    """Unlink the names of every segment held for the pool with ``token``.

    Their arrays stay valid; only sending them on without a copy ends.
    """
    with _held_lock:
        records = [h for h in _held.values() if h.token == token and h.linked]
        for held in records:
            held.linked = False
    for held in records:
        unlink(held.name, tracked=True)


def _adopted_name(buffer: object) -> str | None:
    with _held_lock:
        held = _held.get(id(buffer))
        return held.name if held is not None and held.linked else None


class _Unmapper:
    """The background thread "aiopar-unmap": segments whose arrays are all gone go back
    to their arena, or are unlinked and unmapped."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Held] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, held: _Held) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="aiopar-unmap", daemon=True)
                self._thread.start()
        self._queue.put(held)

    def _run(self) -> None:
        while True:
            held = self._queue.get()
            with _held_lock:
                linked, held.linked = held.linked, False
                _forget(held)
            if linked:
                with _arenas_lock:
                    arena = _arenas.get(held.token)
                segment = Segment(held.name, len(held.segment), held.segment, held.touched)
                if arena is not None and arena.recycle(segment):
                    continue
                unlink(held.name, tracked=True)
            try:
                held.segment.close()
            except BufferError:
                pass  # someone holds the mmap itself; it goes when they let go


_unmapper = _Unmapper()


# ── array helpers ──────────────────────────────────────────────────────────────────


def _big(array: Any) -> bool:
    return type(array).__module__ == "numpy" and (
        array.nbytes >= THRESHOLD and not array.dtype.hasobject
    )


def _root_buffer(array: Any) -> object:
    base = array
    while getattr(base, "base", None) is not None:
        base = base.base
    return base


def _address(array: Any) -> int:
    return int(array.__array_interface__["data"][0])


def create_output(arena: Arena, nbytes: int) -> _Held:
    """A segment for answers to be written in place (see ``_packing.Destination``).

    Taken from ``arena`` (a reused one if it has one that fits); a new one is not
    touched here: each worker faults in the pages it writes, in parallel. Call
    :func:`release_output` when the call is over.
    """
    segment = arena.take(nbytes)
    arena.claim(segment.name)
    return _hold(segment.name, arena.token, segment.map, released=False, touched=segment.touched)


def eligible(data: Any) -> bool:
    """Whether ``data`` is an array whose pieces' answers may be written in place."""
    return (
        type(data).__module__ == "numpy"
        and type(data).__name__ == "ndarray"
        and getattr(data, "ndim", 0) >= 1
        and _big(data)
    )


def joined_in_place(answers: list[Any], held: _Held) -> Any:
    """The concatenation of ``answers`` if they lie back to back in ``held``, else None."""
    import numpy as np

    segment = held.segment
    if not answers or not all(type(a) is np.ndarray for a in answers):
        return None
    first = answers[0]
    if any(a.dtype != first.dtype or a.shape[1:] != first.shape[1:] for a in answers):
        return None
    start = _address(np.frombuffer(segment, dtype=np.uint8))
    expected = start
    for answer in answers:
        if _root_buffer(answer) is not segment or not answer.flags.c_contiguous:
            return None
        if _address(answer) != expected:
            return None
        expected += answer.nbytes
    rows = sum(a.shape[0] for a in answers)
    return _root(held, shape=(rows, *first.shape[1:]), dtype=first.dtype)


def release_output(held: _Held, *, written: bool) -> None:
    """The call is over (``written``: every answer was written in place). The segment
    goes back to the arena once the arrays over it are gone (in the unmap thread)."""
    with _held_lock:
        if written:
            held.touched = len(held.segment)
        held.released = True
        done = held.roots == 0
    if done:
        _unmapper.put(held)
