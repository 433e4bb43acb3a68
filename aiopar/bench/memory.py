"""The extra peak memory of one timed run, for the bench process and all its workers.

Read from ``/proc`` in the calling thread, before and after each timed run (never
during one); see :class:`PeakMemory`.
"""

from __future__ import annotations

import os
import sys

from .._load import process_tree

__all__ = ["PeakMemory"]


def _status_kib(pid: int, key: str) -> int | None:
    """A ``kB`` field (``VmRSS``, ``VmHWM``) of ``/proc/PID/status``, or None if gone."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as file:
        file.write("5")  # 5: reset the peak RSS (VmHWM) to the current RSS


class PeakMemory:
    """Extra peak memory of a run, for this process and its descendants.

    The high-water resident set size (``VmHWM``, what ``getrusage().ru_maxrss``
    reports) of this process and of every descendant process (the workers), each reset
    through ``/proc/PID/clear_refs`` before a timed run, minus the resident size it had
    then, summed over the processes: the extra memory the run needed, an upper bound
    when the processes peak at different moments. Without a resettable ``/proc`` (not
    Linux) it falls back to the growth of ``ru_maxrss`` of self and children, which only
    shows new all-time peaks.
    """

    def __init__(self) -> None:
        try:
            _reset_peak(os.getpid())
            self.method = (
                "VmHWM (= ru_maxrss) of this process and each descendant, reset through"
                " /proc/PID/clear_refs before each timed run, minus its RSS at that moment,"
                " summed over processes"
            )
            self._proc = True
        except OSError:
            self.method = "growth of getrusage ru_maxrss, self + children (only new peaks show)"
            self._proc = False
        self._base: dict[int, int] = {}

    @staticmethod
    def _maxrss_kib() -> int:
        import resource  # not on Windows; only needed without /proc

        self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        scale = 1024 if sys.platform == "darwin" else 1  # bytes on macOS
        return (self_kib + children_kib) // scale

    def start(self) -> None:
        """Reset the peaks; call right before the timed run."""
        self._base = {}
        if not self._proc:
            self._base[0] = self._maxrss_kib()
            return
        for pid in process_tree():
            try:
                _reset_peak(pid)
            except OSError:
                continue
            rss = _status_kib(pid, "VmRSS")
            if rss is not None:
                self._base[pid] = rss

    def stop(self) -> float:
        """MiB needed by the run above what the processes held when it started."""
        if not self._proc:
            return max(0, self._maxrss_kib() - self._base.get(0, 0)) / 1024
        total = 0
        for pid, base in self._base.items():
            peak = _status_kib(pid, "VmHWM")
            if peak is not None:
                total += max(0, peak - base)
        return total / 1024
