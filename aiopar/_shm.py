"""Shared-memory segments for numpy arrays: names, the arena, and who keeps what alive.

How arrays get into and out of these segments (pickling with big arrays diverted) is in
``_packing.py``; this module holds the segments themselves:

* :class:`Arena` — the pool's segments kept for reuse: for arrays sent to workers, lent
  to jobs as the place for their results, taken for ``amap_chunks`` outputs, and taken
  back when the arrays over them die. Fresh shared memory costs a page fault and a
  cleared page per 4 KiB on first write (on a VM that returns freed memory to its host,
  several times the copy itself); a reused segment costs neither. Unlinked when the
  pool closes.
* :func:`adopt` / :func:`create_output` — parent mappings that arrays handed to the
  caller live on (a worker's result segment; an ``amap_chunks`` output segment). The
  pool keeps each mapping and counts the arrays over it; when the last one is
  garbage-collected, the "aiopar-unmap" thread gives the segment back to the arena, or
  (pool closed) unmaps it and removes the name. Unmapping a big segment takes tens of
  milliseconds: never on the event loop.
* :class:`_WorkerMaps` — a worker's mappings (read-only for inputs, writable for
  results), cached from job to job and bounded in bytes.

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
    "Loan",
    "Segment",
    "adopt",
    "create_output",
    "eligible",
    "held_size",
    "joined_in_place",
    "new_name",
    "release_output",
    "unlink",
    "unlink_adopted",
]

THRESHOLD = 1 << 20
# Maps every page at once: for pages that already exist, far cheaper than a fault each.
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
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


def _attach(name: str, *, writable: bool, populate: bool = False) -> mmap.mmap:
    fd = _posixshmem.shm_open("/" + name, os.O_RDWR if writable else os.O_RDONLY, mode=0o600)
    try:
        size = os.fstat(fd).st_size
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        flags = mmap.MAP_SHARED | (_MAP_POPULATE if populate else 0)
        return mmap.mmap(fd, size, flags=flags, prot=prot)
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
    """A parent-created segment and its mapping.

    ``touched`` counts the leading bytes known to have been written once: those pages
    exist, so a process that maps the segment may fault them all in at once (cheap)
    instead of one by one, and nobody pays for fresh pages again.
    """

    name: str
    size: int
    map: mmap.mmap
    touched: int = 0


@dataclass(frozen=True)
class Loan:
    """A free arena segment lent to a job for its result (see ``_packing.py``)."""

    name: str
    size: int
    touched: int


_arenas: dict[str, Arena] = {}  # by pool token: where segments whose arrays died go back
_arenas_lock = threading.Lock()


class Arena:
    """The pool's reusable segments. Thread-safe.

    Fresh shared memory is slow: the first write to each page allocates and clears it
    (on a VM that hands freed memory back to its host, much slower still). So segments
    are kept and used again:

    * ``take`` hands out a free segment big enough (but not wastefully so) or creates
      one, for arrays sent to workers; ``give_back`` returns it once the job that read
      it has finished.
    * ``lend`` hands a free segment (never a new one) to a job as the place for its
      result; ``claim`` gives it to the parent mapping that the caller's arrays live on
      (see :class:`_Held`), or ``give_back`` takes it back if the job did not use it.
    * ``recycle`` takes back a segment whose arrays all died (a result, an output).

    Free segments are kept, most recently used last, up to ``keep`` of them and
    ``keep_bytes`` in all; ``close`` unlinks every segment still here.
    """

    keep_bytes = 1 << 30

    def __init__(self, token: str, keep: int = 8) -> None:
        self.token = token
        self._keep = keep
        self._lock = threading.Lock()
        self._free: list[Segment] = []
        self._in_use: dict[str, Segment] = {}
        self._closed = False
        with _arenas_lock:
            _arenas[token] = self

    def _fitting(self, nbytes: int) -> Segment | None:
        fits = [s for s in self._free if nbytes <= s.size <= 2 * nbytes + (1 << 20)]
        if not fits:
            return None
        segment = min(reversed(fits), key=lambda s: s.size)  # the latest of the smallest
        self._free.remove(segment)
        self._in_use[segment.name] = segment
        return segment

    def take(self, nbytes: int) -> Segment:
        with self._lock:
            segment = self._fitting(nbytes)
        if segment is not None:
            return segment
        name = new_name(self.token)
        segment = Segment(name, nbytes, _create(name, nbytes))
        _track(name)
        with self._lock:
            self._in_use[name] = segment
        return segment

    def lend(self, nbytes: int) -> Segment | None:
        """A free segment of about ``nbytes`` for a job's result, or None."""
        with self._lock:
            return None if self._closed else self._fitting(nbytes)

    def claim(self, name: str) -> Segment | None:
        """Take the lent segment ``name`` out of the arena (its new owner is the caller's
        arrays); None if it is not ours."""
        with self._lock:
            return self._in_use.pop(name, None)

    def names(self) -> list[str]:
        """Names of the segments this arena holds (free or in use)."""
        with self._lock:
            return [s.name for s in (*self._free, *self._in_use.values())]

    def give_back(self, segments: list[Segment]) -> None:
        drop = []
        with self._lock:
            for segment in segments:
                if self._in_use.pop(segment.name, None) is None:
                    continue  # claimed, or already closed with the arena
                if self._closed:
                    drop.append(segment)
                else:
                    self._free.append(segment)
            drop += self._trim()
        for segment in drop:
            _close_segment(segment)

    def recycle(self, segment: Segment) -> bool:
        """Keep ``segment`` (no longer used by anyone) for reuse; False once closed, or
        if it alone is bigger than the arena keeps (it would push out all the others)."""
        with self._lock:
            if self._closed or segment.size > self.keep_bytes:
                return False
            self._free.append(segment)
            drop = self._trim()
        for old in drop:
            _close_segment(old)
        return True

    def _trim(self) -> list[Segment]:
        drop = []
        total = sum(s.size for s in self._free)
        while self._free and (len(self._free) > self._keep or total > self.keep_bytes):
            old = self._free.pop(0)
            total -= old.size
            drop.append(old)
        return drop

    def close(self) -> None:
        with _arenas_lock:
            if _arenas.get(self.token) is self:
                del _arenas[self.token]
        with self._lock:
            self._closed = True
            drop = self._free + list(self._in_use.values())
            self._free, self._in_use = [], {}
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


# ── mappings ───────────────────────────────────────────────────────────────────────


class _WorkerMaps:
    """A worker's mappings, most recently used last, bounded in bytes.

    Kept from job to job, so a segment the pool reuses is mapped (and its pages
    faulted in) once per worker. Before each lookup, mappings of segments whose names
    are gone (the pool no longer keeps them) are dropped, so that their memory is freed.
    """

    limit = 1 << 30

    def __init__(self, *, writable: bool) -> None:
        self._writable = writable
        self._maps: OrderedDict[str, mmap.mmap] = OrderedDict()
        self._graveyard: list[mmap.mmap] = []

    def get(self, name: str, *, populate: bool = False) -> mmap.mmap:
        """The mapping of ``name``; ``populate``: its pages all exist, so map them now
        in one go rather than one fault per page."""
        self._drop_unlinked(keep=name)
        segment = self._maps.pop(name, None)
        if segment is None:
            segment = _attach(name, writable=self._writable, populate=populate)
        self._maps[name] = segment
        total = sum(len(m) for m in self._maps.values())
        while total > self.limit and len(self._maps) > 1:
            _, old = self._maps.popitem(last=False)
            total -= len(old)
            self._graveyard.append(old)
        self._graveyard = [m for m in self._graveyard if not _try_close(m)]
        return segment

    def _drop_unlinked(self, keep: str) -> None:
        if not _SHM_DIR:
            return
        for name in [n for n in self._maps if n != keep]:
            if not os.path.exists(os.path.join(_SHM_DIR, name)):
                self._graveyard.append(self._maps.pop(name))


_SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else ""


def _try_close(segment: mmap.mmap) -> bool:
    try:
        segment.close()
    except BufferError:
        return False
    return True


_worker_maps = _WorkerMaps(writable=False)
_worker_targets = _WorkerMaps(writable=True)


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
