"""Shared-memory segments for numpy arrays: names, the arena, and who keeps what alive.

How arrays get into and out of these segments (pickling with big arrays diverted) is in
``_packing.py``; this module holds the segments themselves:

* :class:`Arena` — parent-owned segments for arrays sent to workers, reused from call to
  call so their pages are touched once; unlinked when the pool closes.
* :func:`adopt` / :func:`create_output` — parent mappings that arrays handed to the
  caller live on (a worker's result segment; an ``amap_chunks`` output segment). The
  pool keeps each mapping and counts the arrays over it; when the last one is
  garbage-collected, the "aiopar-unmap" thread closes the mapping and removes the name.
  Unmapping a big segment takes tens of milliseconds: never on the event loop.
* :class:`_WorkerMaps` — a worker's read-only mappings, cached and bounded in bytes.

Names are ``aiopar-<token>-<pid>-<n>``. The parent registers every name it creates or
adopts with multiprocessing's resource tracker, which unlinks them if the parent dies.
Workers register nothing (a worker's tracker would unlink on the worker's exit). We use
``_posixshmem`` directly, not ``multiprocessing.shared_memory.SharedMemory``, whose
3.11 tracker registration in every attaching process is exactly that problem.
"""

from __future__ import annotations

import _posixshmem
import itertools
import mmap
import os
import queue
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing import resource_tracker
from typing import Any

__all__ = [
    "THRESHOLD",
    "Arena",
    "Segment",
    "adopt",
    "create_output",
    "eligible",
    "joined_in_place",
    "new_name",
    "release_output",
    "unlink",
    "unlink_adopted",
]

THRESHOLD = 1 << 20
_counter = itertools.count()


def new_name(token: str) -> str:
    """A fresh segment name, unique in this process (and, with its token, machine-wide)."""
    return f"aiopar-{token}-{os.getpid()}-{next(_counter)}"


def _create(name: str, size: int) -> mmap.mmap:
    fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    try:
        os.ftruncate(fd, max(size, 1))
        return mmap.mmap(fd, max(size, 1))
    finally:
        os.close(fd)


def _attach(name: str, *, writable: bool) -> mmap.mmap:
    fd = _posixshmem.shm_open("/" + name, os.O_RDWR if writable else os.O_RDONLY, mode=0o600)
    try:
        size = os.fstat(fd).st_size
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        return mmap.mmap(fd, size, prot=prot)
    finally:
        os.close(fd)


def unlink(name: str, *, tracked: bool = False) -> None:
    """Remove a segment's name (mappings stay valid); a missing name is fine."""
    try:
        _posixshmem.shm_unlink("/" + name)
    except FileNotFoundError:
        pass
    if tracked:
        resource_tracker.unregister("/" + name, "shared_memory")


def _track(name: str) -> None:
    resource_tracker.register("/" + name, "shared_memory")


# ── the parent's side ──────────────────────────────────────────────────────────────


@dataclass(eq=False)
class Segment:
    """A parent-created segment and its mapping."""

    name: str
    size: int
    map: mmap.mmap


class Arena:
    """Reusable segments for arrays the parent sends to workers. Thread-safe.

    ``take`` hands out a free segment big enough (but not wastefully so) or creates
    one; ``give_back`` returns it once the job that read it has finished. At most
    ``keep`` free segments are kept; ``close`` unlinks them all.
    """

    def __init__(self, token: str, keep: int = 8) -> None:
        self.token = token
        self._keep = keep
        self._lock = threading.Lock()
        self._free: list[Segment] = []
        self._in_use: set[Segment] = set()
        self._closed = False

    def take(self, nbytes: int) -> Segment:
        with self._lock:
            fits = [s for s in self._free if nbytes <= s.size <= 2 * nbytes + (1 << 20)]
            if fits:
                segment = min(fits, key=lambda s: s.size)
                self._free.remove(segment)
                self._in_use.add(segment)
                return segment
        name = new_name(self.token)
        segment = Segment(name, nbytes, _create(name, nbytes))
        _track(name)
        with self._lock:
            self._in_use.add(segment)
        return segment

    def names(self) -> list[str]:
        """Names of the segments this arena holds (free or in use)."""
        with self._lock:
            return [s.name for s in (*self._free, *self._in_use)]

    def give_back(self, segments: list[Segment]) -> None:
        drop = []
        with self._lock:
            for segment in segments:
                if segment not in self._in_use:
                    continue  # already closed with the arena
                self._in_use.discard(segment)
                if self._closed:
                    drop.append(segment)
                else:
                    self._free.append(segment)
            while len(self._free) > self._keep:
                drop.append(self._free.pop(0))
        for segment in drop:
            _close_segment(segment)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            drop = self._free + list(self._in_use)
            self._free, self._in_use = [], set()
        for segment in drop:
            _close_segment(segment)


def _close_segment(segment: Segment) -> None:
    unlink(segment.name, tracked=True)
    try:
        segment.map.close()
    except BufferError:
        pass  # a view is still alive; the memory goes when it does


@dataclass(eq=False)
class _Held:
    """A parent mapping that arrays handed to the caller live on.

    We keep the mapping ourselves and count the arrays made directly over it
    (``roots``); when the last one is garbage-collected and nobody else needs it
    (``released``), the unmap thread closes it and removes its name. Unmapping and
    unlinking a big segment takes tens of milliseconds: never on the event loop.
    """

    name: str
    token: str
    segment: mmap.mmap
    released: bool
    linked: bool = True
    roots: int = 0


_held: dict[int, _Held] = {}  # by id(segment)
_held_by_name: dict[str, _Held] = {}
_held_lock = threading.Lock()


def _hold(name: str, token: str, segment: mmap.mmap, *, released: bool) -> _Held:
    _track(name)
    held = _Held(name, token, segment, released)
    with _held_lock:
        _held[id(segment)] = held
        _held_by_name[name] = held
    return held


def adopt(name: str, token: str) -> _Held:
    """Map a segment a worker wrote for us. Its arrays keep it (and its name) alive."""
    return _hold(name, token, _attach(name, writable=True), released=True)


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
        _unmapper.put(held, close=True)


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
    """The background thread "aiopar-unmap": unlinks names and closes mappings."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[_Held, bool]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, held: _Held, *, close: bool) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="aiopar-unmap", daemon=True)
                self._thread.start()
        self._queue.put((held, close))

    def _run(self) -> None:
        while True:
            held, close = self._queue.get()
            with _held_lock:
                linked, held.linked = held.linked, False
            if linked:
                unlink(held.name, tracked=True)
            if close:
                with _held_lock:
                    _forget(held)
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


# ── mappings ───────────────────────────────────────────────────────────────────────


class _WorkerMaps:
    """The worker's read-only mappings, most recently used last, bounded in bytes."""

    limit = 1 << 30

    def __init__(self) -> None:
        self._maps: OrderedDict[str, mmap.mmap] = OrderedDict()
        self._graveyard: list[mmap.mmap] = []

    def get(self, name: str) -> mmap.mmap:
        segment = self._maps.pop(name, None)
        if segment is None:
            segment = _attach(name, writable=False)
        self._maps[name] = segment
        total = sum(len(m) for m in self._maps.values())
        while total > self.limit and len(self._maps) > 1:
            _, old = self._maps.popitem(last=False)
            total -= len(old)
            self._graveyard.append(old)
        self._graveyard = [m for m in self._graveyard if not _try_close(m)]
        return segment


def _try_close(segment: mmap.mmap) -> bool:
    try:
        segment.close()
    except BufferError:
        return False
    return True


_worker_maps = _WorkerMaps()


def create_output(token: str, nbytes: int) -> _Held:
    """A parent segment for answers to be written in place (see :class:`Destination`).

    Not touched here: each worker faults in the pages it writes, in parallel.
    Call :func:`release_output` when the call is over.
    """
    name = new_name(token)
    return _hold(name, token, _create(name, nbytes), released=False)


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


def release_output(held: _Held) -> None:
    """The call is over: remove the name now and the mapping once its arrays are gone
    (both in the unmap thread)."""
    with _held_lock:
        held.released = True
        done = held.roots == 0
    _unmapper.put(held, close=done)
