"""Finding what a piece of code left behind: child processes, shared-memory segments,
pools left open. The check behind the pytest plugin's ``aiopar_no_leaks`` fixture.

All of it runs in the calling thread (the test's, between the test and its teardown);
it reads ``/proc`` and ``/dev/shm`` and never blocks for long: :meth:`Snapshot.leaks`
polls for at most ``wait`` seconds for processes that are on their way out.
"""

from __future__ import annotations

import gc
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Leaks", "Snapshot", "pool_opened"]


class Pool(Protocol):
    """What the leak check reads of a pool (``aiopar.Pool``, which sits above this
    module: pools call :func:`pool_opened` when they open)."""

    @property
    def closed(self) -> bool: ...

    def worker_pids(self) -> list[int]: ...

    def shared_memory_segments(self) -> list[str]: ...


#: Every pool opened in this process and not yet collected (see :func:`pool_opened`).
_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def pool_opened(pool: Pool) -> None:
    """Called by :meth:`aiopar.Pool.open`: remember ``pool`` for the leak check."""
    _pools.add(pool)


def _open_pools() -> list[Pool]:
    return [pool for pool in list(_pools) if not pool.closed]


def _children() -> set[int]:
    """The live descendants of this process (zombies, already dead, are left out)."""
    try:
        import psutil
    except ImportError:
        pass
    else:
        live: set[int] = set()
        try:
            children = psutil.Process().children(recursive=True)
        except psutil.NoSuchProcess:
            return live
        for child in children:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    live.add(child.pid)
            except psutil.NoSuchProcess:
                pass
        return live
    parents: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except FileNotFoundError:  # neither psutil nor /proc: only what multiprocessing knows
        return {p.pid for p in multiprocessing.active_children() if p.pid is not None}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z":
            parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


def _segments() -> set[str]:
    """The names of aiopar's shared-memory segments (any process's)."""
    try:
        return {name for name in os.listdir("/dev/shm") if name.startswith("aiopar-")}
    except FileNotFoundError:
        return set()


def _maker(name: str) -> int | None:
    """The pid of the process that made segment ``name`` (``aiopar-<token>-<pid>-<n>``)."""
    parts = name.split("-")
    return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None


def _helpers() -> set[int]:
    """multiprocessing's own long-lived helpers: the forkserver, the resource tracker."""
    forkserver = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    tracker = getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)
    return {pid for pid in (forkserver, tracker) if isinstance(pid, int)}


@dataclass
class Leaks:
    """What was left behind: process descriptions, segment names, pools left open."""

    processes: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    pools: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.segments or self.pools)

    def __str__(self) -> str:
        parts = []
        if self.pools:
            parts.append(
                f"pools left open: {', '.join(self.pools)} (use `async with aiopar.Pool(...)` "
                "or close them in the fixture that opens them)"
            )
        if self.processes:
            parts.append(f"child processes left running: {'; '.join(self.processes)}")
        if self.segments:
            parts.append(f"shared-memory segments left in /dev/shm: {', '.join(self.segments)}")
        return "; ".join(parts)


class Snapshot:
    """What exists now; :meth:`leaks` tells what was added since and is still there.

    Pools already open when the snapshot is taken (a session-scoped fixture's, the
    default pool) are the surroundings: their workers, started later or replaced, and
    the segments they keep for reuse do not count as leaks.
    """

    def __init__(self) -> None:
        self._children = _children()
        self._segments = _segments()
        self._pools = {id(pool) for pool in _open_pools()}
        self._keep: set[int] = set()

    def leaks(self, wait: float = 5.0, keep: list[Pool] | None = None) -> Leaks:
        """What was made since the snapshot and is still there after up to ``wait``
        seconds (workers of a closed pool take a moment to go).

        ``keep``: pools opened since, that belong to the surroundings all the same (a
        session-wide fixture's first opened during this test).
        """
        self._keep = {id(pool) for pool in keep or []}
        started = time.monotonic()
        deadline = started + wait
        while True:
            gc.collect()  # arrays in reference cycles hold their segments
            found = self._leaks_now()
            # A pool left open keeps its workers: no use waiting for them to go. Exiting
            # processes get ``wait`` seconds; segments alone get at most one (a closed
            # pool's threads may still be unlinking the last ones).
            now = time.monotonic()
            late = now > (deadline if found.processes else min(deadline, started + 1.0))
            if not found or found.pools or late:
                return found
            time.sleep(0.05)

    def _leaks_now(self) -> Leaks:
        surroundings = [
            pool
            for pool in _open_pools()
            if id(pool) in self._pools or id(pool) in self._keep or _is_default(pool)
        ]
        expected = _helpers()
        kept: set[str] = set()
        for pool in surroundings:
            expected.update(pool.worker_pids())
            kept.update(pool.shared_memory_segments())
        children = _children()
        processes = children - self._children - expected
        ours = {os.getpid()} | children | self._children
        segments = {
            name
            for name in _segments() - self._segments - kept
            if _maker(name) in ours or _maker(name) is None
        }
        left_open = [
            repr(pool)
            for pool in _open_pools()
            if id(pool) not in self._pools and id(pool) not in self._keep and not _is_default(pool)
        ]
        return Leaks(
            processes=[_describe(pid) for pid in sorted(processes)],
            segments=sorted(segments),
            pools=left_open,
        )


def _is_default(pool: Pool) -> bool:
    # Looked up, not imported: the default pool's module sits above this one.
    default = sys.modules.get("aiopar._default")
    return default is not None and pool is getattr(default, "_pool", None)


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            command = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return f"pid {pid}"
    return f"pid {pid}: {command[:120]}"
