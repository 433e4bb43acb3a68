"""Shared-memory segments themselves: names, creating, mapping, unlinking.

Names are ``aiopar-<token>-<pid>-<n>``. The parent registers every name it creates or
adopts with multiprocessing's resource tracker, which unlinks them if the parent dies.
Workers register nothing (a worker's tracker would unlink on the worker's exit). We use
``_posixshmem`` directly, not ``multiprocessing.shared_memory.SharedMemory``, whose
3.11 tracker registration in every attaching process is exactly that problem.

:class:`_WorkerMaps` is a worker's side: its mappings (read-only for inputs, writable
for results), cached from job to job and bounded in bytes; it runs in the worker's main
thread. The rest runs wherever a segment is made or dropped: the executor's feeder
thread (arguments), the dispatcher thread, the "aiopar-unmap" thread.
"""

from __future__ import annotations

import _posixshmem
import itertools
import mmap
import os
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing import resource_tracker

__all__ = ["Loan", "Segment", "new_name", "unlink"]


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


def _close_segment(segment: Segment) -> None:
    unlink(segment.name, tracked=True)
    try:
        segment.map.close()
    except BufferError:
        pass  # a view is still alive; the memory goes when it does


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
