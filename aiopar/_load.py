"""How much of the machine other processes use, for ``python -m aiopar demo`` and ``bench``.

A timing taken while other programs keep the CPUs busy says little about aiopar; the
demo prints this share beside its table, and beside a row that came out slower; the
bench prints it, with the hypervisor's steal apart, under its table. Read
from ``/proc`` (Linux): elsewhere every figure is ``None`` and nothing is printed.
Runs in the calling thread; each reading costs a walk of ``/proc``, so take readings
around whole experiments, not inside a loop.
"""

from __future__ import annotations

import contextlib
import os
import time

__all__ = ["CpuWatch", "process_tree"]


def process_tree() -> list[int]:
    """This process and all its descendants (the workers), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])  # fields after "(comm)"
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _cpu_seconds() -> tuple[float, float] | None:
    """Busy CPU seconds of the whole machine and of this process tree; None without /proc.

    Processes of the tree that ended meanwhile count through their parent's ``cutime``.
    """
    try:
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as file:
            fields = [int(value) for value in file.readline().split()[1:]]
        ours = 0
        for pid in process_tree():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{pid}/stat", "rb") as file:
                    stat = file.read()
                # utime, stime, cutime, cstime: fields 14-17, counted after "(comm)"
                ours += sum(int(v) for v in stat[stat.rindex(b")") + 2 :].split()[11:15])
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / tick, ours / tick


def _steal_seconds() -> float | None:
    """CPU seconds the hypervisor stole from the machine; None without ``/proc``."""
    try:
        with open("/proc/stat") as file:
            fields = file.readline().split()[1:]
        return int(fields[7]) / os.sysconf("SC_CLK_TCK") if len(fields) > 7 else 0.0
    except (OSError, ValueError):
        return None


class CpuWatch:
    """The share of all CPUs that other processes used since the watch was made."""

    def __init__(self) -> None:
        self._start = _cpu_seconds()
        self._steal = _steal_seconds()
        self._since = time.perf_counter()

    def others(self) -> float | None:
        """Share (0 to 1) of the machine's CPU time, since construction, that went to
        processes other than this one and its workers (the hypervisor's steal included);
        None where ``/proc`` is missing or the interval is too short to tell."""
        end = _cpu_seconds()
        elapsed = time.perf_counter() - self._since
        if self._start is None or end is None or elapsed <= 0:
            return None
        busy, ours = (b - a for a, b in zip(self._start, end, strict=True))
        capacity = elapsed * (os.cpu_count() or 1)
        if capacity * os.sysconf("SC_CLK_TCK") < 20:
            return None  # fewer than 20 clock ticks: the counters are too coarse
        return min(1.0, max(0.0, busy - ours) / capacity)

    def steal(self) -> float | None:
        """Share (0 to 1) of the machine's CPU time, since construction, that the
        hypervisor stole (part of :meth:`others`); None where ``/proc`` is missing."""
        end = _steal_seconds()
        elapsed = time.perf_counter() - self._since
        if self._steal is None or end is None or elapsed <= 0:
            return None
        return min(1.0, max(0.0, end - self._steal) / (elapsed * (os.cpu_count() or 1)))
