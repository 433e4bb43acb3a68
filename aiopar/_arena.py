"""The pool's arena: shared-memory segments kept for reuse. Thread-safe.

Fresh shared memory costs a page fault and a cleared page per 4 KiB on first write (on
a VM that returns freed memory to its host, several times the copy itself); a reused
segment costs neither. The arena serves arrays sent to workers (taken in the executor's
feeder thread), results' segments lent to jobs (the dispatcher thread), ``amap_chunks``
outputs (the caller's thread), and takes back segments whose arrays died (the
"aiopar-unmap" thread, see ``_shm.py``). Unlinked when the pool closes.
"""

from __future__ import annotations

import threading

from ._segments import Segment, _close_segment, _create, _track, new_name

__all__ = ["Arena"]


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
